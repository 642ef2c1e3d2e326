"""Source health: what ``GET /v1/providers`` and ``broker providers`` show."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from broker.domain import utcnow
from broker.polling.service import skip_reason
from broker.providers import repository
from broker.runtime import Runtime


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def provider_status(
    runtime: Runtime, *, demo: bool, next_run: Callable[[str], datetime | None] | None = None
) -> list[dict[str, Any]]:
    now = utcnow()
    with runtime.engine.connect() as conn:
        runs = repository.last_runs(conn)
        fresh = repository.last_successes(conn)
    offers = Counter(o.source for o in runtime.index.current.offers)
    out: list[dict[str, Any]] = []
    for cfg in runtime.settings.sources.values():
        reason = skip_reason(runtime, cfg, demo=demo)
        run = runs.get(cfg.name)
        newest = fresh.get(cfg.name)
        out.append(
            {
                "source": cfg.name,
                "kind": cfg.kind,
                "configured": reason is None,
                "skipped_reason": reason,
                "interval_minutes": cfg.interval_minutes,
                "offers": offers.get(cfg.name, 0),
                "data_age_seconds": round((now - newest).total_seconds()) if newest else None,
                "newest_data_at": _iso(newest),
                "next_run_at": _iso(next_run(cfg.name)) if next_run else None,
                "last_poll": None
                if run is None
                else {
                    "started_at": _iso(run["started_at"]),
                    "finished_at": _iso(run["finished_at"]),
                    "outcome": run["outcome"],
                    "offers_seen": run["offers_seen"],
                    "offers_new": run["offers_new"],
                    "prices_changed": run["prices_changed"],
                    "offers_withdrawn": run["offers_withdrawn"],
                    "rejected": run["rejected"],
                    "warnings": run["warnings"],
                    "error": run["error"],
                    "demo": run["demo"],
                },
            }
        )
    return out
