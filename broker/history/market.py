"""``GET /v1/market/{gpu}``: one GPU model now (from the offer index) and over the last 7 and 30 days (history)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from broker.gpus import GpuCatalog, GpuModel
from broker.history.repository import OBSERVED
from broker.history.schemas import BadQuery, build_query
from broker.history.service import price_history
from broker.offers.index import IndexedOffer, OfferIndex
from broker.store.bulk import Dialect

WINDOWS = (7, 30)
VOLATILITY = (
    "coefficient of variation (population standard deviation / mean) of the daily minimum price per GPU-hour "
    "across providers, over the window's days that had a price"
)
STATS_BASIS = "daily minimum price per GPU-hour across all providers (per purchase option), over whole UTC days"


def resolve_model(catalog: GpuCatalog, gpu: str) -> GpuModel:
    exact = catalog.get(gpu)
    if exact is not None:
        return exact
    found = catalog.matching(gpu)
    if len(found) == 1:
        return found[0]
    if not found:
        families = ", ".join(sorted({m.family for m in catalog.models()}))
        raise BadQuery("gpu", f"unknown GPU {gpu!r}; use a model id or a family: {families}")
    raise BadQuery("gpu", f"{gpu!r} matches {len(found)} models ({', '.join(m.id for m in found)}); ask for one")


def _money(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def _cheapest(o: IndexedOffer, now: datetime) -> dict[str, Any]:
    return {
        "provider": o.key.provider, "purchase": o.key.purchase, "region": o.key.region, "zone": o.key.zone or None,
        "instance_type": o.key.instance_type, "term": o.key.term or None, "gpu_count": o.gpu_count,
        "gpu_hourly_usd": _money(o.gpu_hourly_usd), "hourly_usd": _money(o.hourly_usd),
        "availability": o.availability.value, "source": o.source,
        "observed_at": o.observed_at.isoformat(), "age_s": int((now - o.last_confirmed_at).total_seconds()),
    }  # fmt: skip


def _discount(spot: float | None, on_demand: float | None) -> float | None:
    return None if spot is None or not on_demand else round(1 - spot / on_demand, 4)


def window_stats(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"days": 0, "min": None, "median": None, "max": None, "volatility": None}
    mean = statistics.fmean(values)
    cv = statistics.pstdev(values) / mean if len(values) > 1 and mean > 0 else None
    return {
        "days": len(values), "min": _money(min(values)), "median": _money(statistics.median(values)),
        "max": _money(max(values)), "volatility": None if cv is None else round(cv, 4),
    }  # fmt: skip


def market_view(
    engine: Engine, catalog: GpuCatalog, index: OfferIndex, gpu: str, *, now: datetime,
    intervals: Mapping[str, float] | None = None,
) -> dict[str, Any]:  # fmt: skip
    model = resolve_model(catalog, gpu)
    offers = [o for o in index.by_gpu.get(model.id, ()) if o.gpu_count > 0]
    best: dict[tuple[str, str], IndexedOffer] = {}
    for o in offers:
        k = (o.key.provider, o.key.purchase)
        if k not in best or o.gpu_hourly_usd < best[k].gpu_hourly_usd:
            best[k] = o
    cheapest = sorted(best.values(), key=lambda o: (o.gpu_hourly_usd, o.key.provider, o.key.purchase))

    def low(purchase: str, provider: str | None = None) -> float | None:
        prices = [o.gpu_hourly_usd for (p, pu), o in best.items() if pu == purchase and provider in (None, p)]
        return min(prices) if prices else None

    providers = sorted({p for p, _ in best})
    discounts = {p: _discount(low("spot", p), low("on_demand", p)) for p in providers}
    history = _history_stats(engine, catalog, model.id, now, intervals)
    return {
        "gpu_model": model.id,
        "unit": "USD per GPU-hour",
        "as_of": index.built_at.isoformat(),
        "cheapest": [_cheapest(o, now) for o in cheapest],
        "spot_discount": {
            "definition": "1 - cheapest spot / cheapest on-demand price per GPU-hour",
            "overall": _discount(low("spot"), low("on_demand")),
            "by_provider": {p: d for p, d in discounts.items() if d is not None},
        },
        "history": history,
        "sources": _sources(engine, offers, now),
    }


def _history_stats(
    engine: Engine, catalog: GpuCatalog, model_id: str, now: datetime, intervals: Mapping[str, float] | None
) -> dict[str, Any]:
    longest = max(WINDOWS)
    q = build_query(catalog, now=now, gpu=model_id, from_=now - timedelta(days=longest), to=now, step="1d",
                    agg="min", group_by="purchase")  # fmt: skip
    # exactly this model: an alias could also match sibling models
    result = price_history(engine, replace(q, gpu_models=(model_id,)), now=now, intervals=intervals)
    by_purchase: dict[str, list[tuple[datetime, float]]] = {s.key["purchase"]: s.points for s in result.series}
    out: dict[str, Any] = {"basis": STATS_BASIS, "volatility_definition": VOLATILITY, "by_purchase": {}}
    for purchase, points in sorted(by_purchase.items()):
        out["by_purchase"][purchase] = {
            f"{days}d": window_stats([v for t, v in points if t >= now - timedelta(days=days)]) for days in WINDOWS
        }
    return out


def _sources(engine: Engine, offers: Sequence[IndexedOffer], now: datetime) -> list[dict[str, Any]]:
    freshest: dict[str, datetime] = {}
    for o in offers:
        if o.source not in freshest or o.last_confirmed_at > freshest[o.source]:
            freshest[o.source] = o.last_confirmed_at
    if not freshest:
        return []
    names = sorted(freshest)
    params = {f"s{i}": n for i, n in enumerate(names)}
    marks = ", ".join(f":s{i}" for i in range(len(names)))
    outcomes = ", ".join(f"'{o}'" for o in OBSERVED)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT source, MAX(snapshot_taken_at) FROM poll_runs WHERE source IN ({marks}) "
                f"AND outcome IN ({outcomes}) GROUP BY source"
            ),
            params,
        ).all()
        read = Dialect(conn).read_dt
        polled = {src: read(t) for src, t in rows}
    out = []
    for name in names:
        last_poll = polled.get(name)
        out.append({
            "source": name,
            "last_confirmed_at": freshest[name].isoformat(),
            "data_age_s": int((now - freshest[name]).total_seconds()),
            "last_poll_at": last_poll.isoformat() if last_poll else None,
        })  # fmt: skip
    return out
