"""What a running broker holds: settings, the database engine, the GPU catalog and the offer index.

Built once per process (by the CLI or by ``create_app``) and shared by the API, the scheduler and the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, Engine

from broker.domain import utcnow
from broker.gpus import GpuCatalog
from broker.offers.index import IndexedOffer
from broker.offers.pricing import apply_rules, discount_rules
from broker.offers.repository import confirmations_since, data_version
from broker.offers.service import IndexHolder
from broker.placement.costmodel import PlacementConfig
from broker.placement.engine import warm
from broker.settings import Settings, load_settings
from broker.store.db import make_engine


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    catalog: GpuCatalog
    demo: bool = False
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings | None = None, *, demo: bool = False) -> Runtime:
        settings = settings or load_settings()
        catalog = GpuCatalog.load(settings.config_dir / "gpus.toml")
        return cls(settings=settings, engine=make_engine(settings.database_url), catalog=catalog, demo=demo)

    @cached_property
    def index(self) -> IndexHolder:
        from broker.risk.repository import spot_observations, usage_version
        from broker.risk.service import prior_hours, with_learned_rates

        # a price older than twice its source's poll interval is stale (placement never picks it)
        max_age = {name: timedelta(minutes=2 * s.interval_minutes) for name, s in self.settings.sources.items()}
        rules = discount_rules(self.settings)
        pseudo_hours = prior_hours(self.settings.placement)

        def effective(conn: Connection, offers: list[IndexedOffer]) -> list[IndexedOffer]:
            offers = apply_rules(rules, offers, utcnow().date())
            return with_learned_rates(offers, spot_observations(conn), self.placement_config, pseudo_hours)

        def version(conn: Connection) -> object:
            # a new poll or a new usage report (learned interruption rates) both change the index
            return (data_version(conn), usage_version(conn))

        def freshen(conn: Connection, old: Any, new: Any) -> Mapping[str, datetime] | None:
            # learned rates unchanged and only polls since: they may have just confirmed prices
            if old[1] != new[1] or new[0] <= old[0]:
                return None
            return confirmations_since(conn, old[0], new[0])

        holder = IndexHolder(self.engine, max_age=max_age, transform=effective, version=version, freshen=freshen)
        # placement precomputes per index; doing it at the swap keeps that cost off the first request
        holder.on_swap.append(lambda index: warm(index, self.catalog, self.placement_config))
        return holder

    @cached_property
    def placement_config(self) -> PlacementConfig:
        opts = self.settings.placement
        base = self.settings.config_dir
        return PlacementConfig.load(
            base / str(opts.get("config_path", "placement.toml")), base / str(opts.get("egress_path", "egress.toml"))
        )

    def close(self) -> None:
        self.engine.dispose()
