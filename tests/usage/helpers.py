"""Placements written straight into the ``placements`` table, and a test app serving this package's routes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy import Engine, insert

from broker.api.deps import provide_runtime
from broker.api.problems import EXCEPTION_HANDLERS
from broker.runtime import Runtime
from broker.store.models import Placement, table


def add_placement(
    engine: Engine,
    *,
    provider: str = "aws",
    region: str = "us-east-1",
    instance_type: str = "p5.48xlarge",
    purchase: str = "on_demand",
    gpu_model: str = "H100-SXM",
    gpus_per_node: int = 8,
    nodes: int = 1,
    hourly_usd: str = "98.32",
    labels: dict[str, str] | None = None,
    created_at: datetime | None = None,
) -> str:
    pid = str(uuid.uuid4())
    choice = {
        "provider": provider,
        "region": region,
        "zone": "",
        "instance_type": instance_type,
        "purchase": purchase,
        "term": "",
        "gpu_model": gpu_model,
        "gpus_per_node": gpus_per_node,
        "nodes": nodes,
        "hourly_usd": hourly_usd,  # all nodes, as Decision serialises Decimal
    }
    with engine.begin() as conn:
        conn.execute(
            insert(table(Placement)).values(
                id=pid,
                created_at=created_at or datetime(2026, 10, 1, tzinfo=UTC),
                request={"name": "job"},
                decision={"choice": choice, "alternatives": [], "rejected": {}, "examined": 1, "placement_id": pid},
                provider=provider,
                purchase=purchase,
                gpu_model=gpu_model,
                expected_cost_usd=Decimal("100"),
                labels=labels or {},
            )
        )
    return pid


def app_for(runtime: Runtime, routes: list[Any]) -> Litestar:
    return Litestar(
        route_handlers=routes,
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False)},
        exception_handlers=dict(EXCEPTION_HANDLERS),
        state=State({"runtime": runtime}),
    )
