"""Showback over usage records: cost, GPU-hours, runs and the saving against on-demand list prices per group.

A record belongs to the window when its run started in it. The saving compares what a run cost with the on-demand
list price of the same GPU model in force when the run started: the same provider's (same region first), else the
cheapest provider's; each group says which basis its GPU-hours were priced on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from broker.domain import ConfigError, utcnow
from broker.usage import repository
from broker.usage.models import UsageRecord
from broker.usage.prices import OnDemandReference
from broker.usage.service import purchase_class

COLUMNS = frozenset({"provider", "region", "instance_type", "purchase", "gpu_model"})  # else: a placement label
NONE_LABEL = "(none)"
CLASSES = ("spot", "on_demand", "committed")


def month_start(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(t: datetime) -> datetime:
    return t.replace(year=t.year + 1, month=1) if t.month == 12 else t.replace(month=t.month + 1)


def money(x: Decimal | float) -> str:
    """$4,115 / $12.50 / $0.0023: whole dollars from $100, cents from $1, two significant figures below."""
    v = float(x)
    if abs(v) >= 100:
        return f"${v:,.0f}"
    if abs(v) >= 1 or v == 0:
        return f"${v:,.2f}"
    return f"${v:.2g}" if abs(v) >= 1e-4 else f"${v:.2e}"


def period_phrase(start: datetime, end: datetime, now: datetime) -> str:
    if start == month_start(now) and end >= now - timedelta(minutes=1):
        return "this month"
    if start == month_start(start) and end == next_month(start):
        return f"in {start:%B %Y}"
    return f"from {start:%Y-%m-%d} to {end:%Y-%m-%d}"


@dataclass(slots=True)
class _Group:
    runs: int = 0
    gpu_hours: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    estimated_cost: Decimal = Decimal(0)
    predictions: int = 0
    predicted_cost: Decimal = Decimal(0)  # cost of the runs that reported predictions
    by_class: dict[str, Decimal] = field(default_factory=lambda: {c: Decimal(0) for c in CLASSES})
    od_equivalent: Decimal = Decimal(0)
    priced_cost: Decimal = Decimal(0)  # cost of the runs that had an on-demand reference
    unpriced_gpu_hours: Decimal = Decimal(0)
    basis: dict[str, Decimal] = field(default_factory=dict)  # reference basis -> GPU-hours priced on it


def _key(r: UsageRecord, group_by: Sequence[str]) -> tuple[str, ...]:
    labels = r.labels or {}
    return tuple(str(getattr(r, g)) if g in COLUMNS else str(labels.get(g, NONE_LABEL)) for g in group_by)


def _f(x: Decimal, nd: int = 6) -> float:
    return round(float(x), nd)


def _group_out(names: Sequence[str], key: tuple[str, ...], g: _Group, period: str) -> dict[str, Any]:
    per_run = g.cost / g.runs if g.runs else Decimal(0)
    per_pred = g.predicted_cost / g.predictions if g.predictions else None
    hours = g.gpu_hours
    saving = g.od_equivalent - g.priced_cost
    who = ", ".join(f"{n} {v}" for n, v in zip(names, key, strict=True)) or "all usage"
    tail = f"{money(per_pred)} per prediction" if per_pred is not None else f"{money(per_run)} per run"
    return {
        "group": dict(zip(names, key, strict=True)),
        "runs": g.runs,
        "gpu_hours": _f(hours),
        "cost_usd": _f(g.cost, 2),
        "cost_estimated_usd": _f(g.estimated_cost, 2),
        "cost_per_run_usd": _f(per_run, 4),
        "cost_per_gpu_hour_usd": _f(g.cost / hours, 4) if hours else None,
        "predictions": g.predictions or None,
        "cost_per_prediction_usd": None if per_pred is None else float(f"{per_pred:.6g}"),
        "share": {c: _f(v / hours, 4) if hours else 0.0 for c, v in g.by_class.items()},
        "on_demand_equivalent_usd": _f(g.od_equivalent, 2),
        "saving_vs_on_demand_usd": _f(saving, 2),
        "saving_vs_on_demand_share": _f(saving / g.od_equivalent, 4) if g.od_equivalent else None,
        "list_price_basis_gpu_hours": {b: _f(h) for b, h in sorted(g.basis.items())},
        "unpriced_gpu_hours": _f(g.unpriced_gpu_hours),
        "summary": f"{who}: {money(g.cost)} {period}, {tail}",
    }


def parse_group_by(raw: str | None) -> list[str]:
    names = [g.strip() for g in (raw or "").split(",") if g.strip()]
    if len(names) != len(set(names)):
        raise ConfigError("group_by: a name appears twice")
    if any(len(n) > 64 for n in names) or len(names) > 8:
        raise ConfigError("group_by: at most 8 names of up to 64 characters")
    return names


def showback(
    engine: Engine,
    group_by: Sequence[str],
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or utcnow()
    start = start or month_start(now)
    end = end or now
    if end <= start:
        raise ConfigError("to: must be after from")
    groups: dict[tuple[str, ...], _Group] = {}
    with Session(engine) as session:
        records = repository.load(session, start, end, started_in_window=True)
        refs = OnDemandReference.load(session, {r.gpu_model for r in records}, start, end)
        for r in records:
            g = groups.setdefault(_key(r, group_by), _Group())
            g.runs += 1
            g.gpu_hours += r.gpu_hours
            g.cost += r.cost_usd
            if r.cost_estimated:
                g.estimated_cost += r.cost_usd
            if r.predictions:
                g.predictions += r.predictions
                g.predicted_cost += r.cost_usd
            g.by_class[purchase_class(r.purchase)] += r.gpu_hours
            ref = refs.at(r.gpu_model, r.provider, r.region, r.started_at)
            if ref is None:
                g.unpriced_gpu_hours += r.gpu_hours
                continue
            g.od_equivalent += r.gpu_hours * ref.gpu_hourly_usd
            g.priced_cost += r.cost_usd
            g.basis[ref.basis] = g.basis.get(ref.basis, Decimal(0)) + r.gpu_hours
    period = period_phrase(start, end, now)
    items = [_group_out(group_by, k, g, period) for k, g in sorted(groups.items(), key=lambda kv: -kv[1].cost)]
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "group_by": list(group_by),
        "period": period,
        "items": items,
        "total_cost_usd": _f(sum((g.cost for g in groups.values()), Decimal(0)), 2),
        "unit": "USD",
        "notes": [
            "a run counts in the window it started in",
            "cost is billed_usd when reported, else GPU-hours at the placement's price (cost_estimated_usd)",
            "saving compares with the on-demand list price of the same GPU model in force when each run started: "
            "same provider and region, else same provider, else the cheapest provider (list_price_basis_gpu_hours)",
            "share is of GPU-hours",
        ],
    }
