"""Building price histories through the real ingest path, and a brute-force reference of the step semantics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from broker.domain import PriceObservation
from broker.gpus import GpuCatalog
from broker.store.ingest import apply_snapshot
from tests.factories import obs, snap

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(hours: float = 0, days: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, days=days)


def poll(engine: Engine, catalog: GpuCatalog, t: datetime, observations: Sequence[PriceObservation],
         source: str = "test") -> None:  # fmt: skip
    r = apply_snapshot(engine, snap([*observations], at=t, source=source), catalog)
    assert r.outcome.value in ("ok", "partial"), r


@dataclass
class Piece:
    """One offer's price from t0 until t1 (None: still)."""

    group: tuple[str, ...]
    t0: datetime
    t1: datetime | None
    price: float
    offer: str = ""


def reference(pieces: Sequence[Piece], start: datetime, end: datetime, step: timedelta, agg: str
              ) -> dict[tuple[str, ...], list[tuple[datetime, float]]]:  # fmt: skip
    """The definition, literally: per bucket the prices in force in it, weighted by the seconds each was."""
    out: dict[tuple[str, ...], list[tuple[datetime, float]]] = {}
    for group in sorted({p.group for p in pieces}):
        points = []
        b = start
        while b < end:
            e = min(b + step, end)
            inside = [(p, max(p.t0, b), min(p.t1 or end, e)) for p in pieces if p.group == group]
            inside = [(p, f, t) for p, f, t in inside if t > f]
            if inside:
                prices = [p.price for p, _, _ in inside]
                at_end = [p.price for p, _, t in inside if t >= e]
                value = {
                    "min": min(prices),
                    "max": max(prices),
                    "avg": sum(p.price * (t - f).total_seconds() for p, f, t in inside)
                    / sum((t - f).total_seconds() for _, f, t in inside),
                    "last": min(at_end) if at_end else None,
                }[agg]
                if value is not None:
                    points.append((b, value))
            b += step
        if points:
            out[group] = points
    return out


__all__ = ["T0", "Piece", "at", "obs", "poll", "reference"]
