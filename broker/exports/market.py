"""Market evidence from the price history: the best price per provider and purchase class for one GPU model."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from broker.usage.prices import PricePoint
from broker.usage.service import purchase_class


def _iso(t: datetime) -> str:
    return t.isoformat()


def best_prices(points: Iterable[PricePoint], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per (provider, class): the lowest price per GPU-hour in force during [start, end), when it was in force,
    and the lowest in force at ``end`` (the current market)."""
    groups: dict[tuple[str, str], list[PricePoint]] = {}
    for p in points:
        groups.setdefault((p.provider, purchase_class(p.purchase)), []).append(p)
    out: list[dict[str, Any]] = []
    for (provider, cls), pts in sorted(groups.items()):
        best = min(pts, key=lambda p: (p.gpu_hourly_usd, p.valid_from))
        live = [p for p in pts if p.valid_to is None or p.valid_to >= end]
        current = min(live, key=lambda p: p.gpu_hourly_usd) if live else None
        seen_to = min(best.valid_to, end) if best.valid_to is not None else end
        out.append(
            {
                "provider": provider,
                "class": cls,
                "gpu_hourly_usd": round(float(best.gpu_hourly_usd), 6),
                "purchase": best.purchase,
                "term": best.term or None,
                "payment": best.payment or None,
                "plan": best.plan or None,
                "region": best.region,
                "instance_type": best.instance_type,
                "in_force_from": _iso(max(best.valid_from, start)),
                "in_force_to": _iso(seen_to),
                "still_current": best.valid_to is None,
                "current_gpu_hourly_usd": None if current is None else round(float(current.gpu_hourly_usd), 6),
            }
        )
    return out


def lowest_committed(market: list[dict[str, Any]]) -> dict[str, Any] | None:
    committed = [m for m in market if m["class"] == "committed"]
    return min(committed, key=lambda m: m["gpu_hourly_usd"]) if committed else None

