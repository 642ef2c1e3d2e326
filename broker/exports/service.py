"""The commitment-negotiation export: usage profile, recommended commitment per term on offer, market evidence,
and a target price, per GPU model (and per provider where a model's usage is concentrated).

The alternative to committing (p in cost-models.md §5.2) is what the team actually paid per GPU-hour over the
lookback (its spot/on-demand blend): a team that runs well on spot should commit less. Where no cost was recorded
it is the cheapest current on-demand price. Committed offers are the current index's reserved, savings-plan,
committed-use and contract (rate card) offers; the broker can steer usage to whichever provider holds the
commitment, so a term is evaluated against the GPU model's whole usage unless ``provider`` narrows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from broker.domain import COMMITTED_PURCHASES, ConfigError, Purchase, utcnow
from broker.exports import commitments as cm
from broker.exports.market import best_prices, lowest_committed
from broker.gpus import GpuCatalog
from broker.offers.index import IndexedOffer, OfferIndex
from broker.usage import repository
from broker.usage.models import UsageRecord
from broker.usage.prices import load_history

CONCENTRATED_SHARE = 0.5  # a provider holding at least this share of a model's GPU-hours gets its own section
RECENT_HOURS = 72  # Azure's stale-data guard (cost-models.md §5.3): the level the last 3 days alone would give
HOURS_PER_YEAR = 8760


@dataclass(frozen=True, slots=True)
class ExportParams:
    lookback_days: int = 90
    gpu: str | None = None
    provider: str | None = None
    now: datetime | None = None


def _r(x: float, nd: int = 6) -> float:
    return round(x, nd)


def _term_label(o: IndexedOffer) -> str:
    return o.key.term or ("contract" if o.key.purchase == Purchase.CONTRACT else o.key.purchase)


def term_offers(index: OfferIndex, gpu_model: str, provider: str | None) -> list[IndexedOffer]:
    """The cheapest committed offer per (provider, purchase, term, payment, plan) for this GPU model."""
    best: dict[tuple[str, ...], IndexedOffer] = {}
    for o in index.by_gpu.get(gpu_model, ()):
        k = o.key
        if k.purchase not in COMMITTED_PURCHASES or o.gpu_count <= 0 or (provider and k.provider != provider):
            continue
        group = (k.provider, k.purchase, _term_label(o), k.payment, k.plan)
        if group not in best or o.gpu_hourly_usd < best[group].gpu_hourly_usd:
            best[group] = o
    return [best[g] for g in sorted(best)]


def _alternative(records: Sequence[UsageRecord], index: OfferIndex, gpu_model: str) -> tuple[float, str]:
    hours = sum(float(r.gpu_hours) for r in records)
    cost = sum(float(r.cost_usd) for r in records)
    if hours > 0 and cost > 0:
        return cost / hours, "effective price paid over the lookback (spot/on-demand/committed blend)"
    od = [o.gpu_hourly_usd for o in index.by_gpu.get(gpu_model, ()) if o.key.purchase == Purchase.ON_DEMAND]
    if od:
        return min(od), "cheapest current on-demand price (no cost recorded for this usage)"
    return 0.0, "unknown: no cost recorded and no on-demand offer"


def _recommendation(o: IndexedOffer, series: list[float], alt: float) -> dict[str, Any]:
    rate = o.gpu_hourly_usd
    step = float(o.gpu_count)
    best = cm.best_level(series, rate, alt, step)
    recent = cm.best_level(series[-RECENT_HOURS:], rate, alt, step)
    hours = len(series)
    note = ""
    if best.level == 0:
        note = (
            "do not commit: the committed rate is not below your alternative price"
            if rate >= alt
            else "do not commit: usage is too uneven for this discount"
        )
    elif recent.level < best.level:
        note = f"usage of the last {RECENT_HOURS} h alone would support only {recent.level:g} GPUs"
    return {
        "provider": o.key.provider,
        "purchase": o.key.purchase,
        "term": _term_label(o),
        "payment": o.key.payment or None,
        "plan": o.key.plan or None,
        "region": o.key.region,
        "instance_type": o.key.instance_type,
        "gpus_per_instance": o.gpu_count,
        "committed_gpu_hourly_usd": _r(rate),
        "discount_vs_alternative": _r(1 - rate / alt) if alt > 0 else None,
        "break_even_utilisation": _r(rate / alt) if alt > 0 else None,
        "level_gpus": best.level,
        "level_instances": int(best.level // step),
        "hourly_commitment_usd": _r(rate * best.level),
        "cost_without_usd": _r(best.cost_without, 2),
        "cost_with_usd": _r(best.cost_with, 2),
        "saving_usd": _r(best.saving, 2),
        "saving_share": _r(best.saving_share),
        "coverage": _r(best.coverage),
        "utilisation": _r(best.utilisation(hours)),
        "annual_saving_usd": _r(best.saving * HOURS_PER_YEAR / hours, 2) if hours else 0.0,
        "recent_72h_level_gpus": recent.level,
        "note": note,
    }


def _target(
    series: list[float], prof: cm.Profile, alt: float, market: list[dict[str, Any]], gpu_model: str
) -> dict[str, Any]:
    """The price to ask for: the lowest committed price seen on the market, capped by the break-even rate of
    committing to the median usage (above it, a commitment to your typical load costs more than you pay now)."""
    if prof.p50 <= 0 or alt <= 0:
        return {"gpu_hourly_usd": None, "reasoning": "no steady base load (median hourly usage is 0): nothing to ask"}
    at_p50 = cm.replay(series, prof.p50, 0.0, alt)
    break_even = alt * at_p50.utilisation(len(series))
    anchor = lowest_committed(market)
    if anchor is not None and anchor["gpu_hourly_usd"] <= break_even:
        price = anchor["gpu_hourly_usd"]
        why = (
            f"{anchor['provider']} offered {gpu_model} {anchor['term'] or anchor['purchase']} at ${price:.4f}/GPU-h "
            f"(in force {anchor['in_force_from'][:10]} to {anchor['in_force_to'][:10]}); you pay ${alt:.4f}, so "
            f"committing {prof.p50:.1f} GPUs (your median) at that price saves "
            f"${(alt * at_p50.covered_gpu_hours - price * prof.p50 * len(series)) * HOURS_PER_YEAR / len(series):,.0f}"
            "/year"
        )
    else:
        price = round(break_even * 0.999, 4)
        seen = (
            f"the best committed market price (${anchor['gpu_hourly_usd']:.4f}, {anchor['provider']}) is above it"
            if anchor is not None
            else "no committed price for this GPU is in the price history"
        )
        why = (
            f"below ${break_even:.4f}/GPU-h a commitment to your median {prof.p50:.1f} GPUs beats the ${alt:.4f} you "
            f"pay now ({at_p50.utilisation(len(series)):.0%} utilised); {seen}"
        )
    return {"gpu_hourly_usd": _r(price, 4), "break_even_at_median_gpu_hourly_usd": _r(break_even, 4), "reasoning": why}


def _paid(records: Sequence[UsageRecord]) -> list[dict[str, Any]]:
    by: dict[str, list[Decimal]] = {}
    for r in records:
        acc = by.setdefault(r.provider, [Decimal(0), Decimal(0)])
        acc[0] += r.gpu_hours
        acc[1] += r.cost_usd
    return [
        {
            "provider": p,
            "gpu_hours": _r(float(h)),
            "cost_usd": _r(float(c), 2),
            "effective_gpu_hourly_usd": _r(float(c / h)) if h else None,
        }
        for p, (h, c) in sorted(by.items())
    ]


def _scope(
    session: Session,
    index: OfferIndex,
    gpu_model: str,
    provider: str | None,
    records: Sequence[UsageRecord],
    start: datetime,
    end: datetime,
    hours: int,
) -> dict[str, Any]:
    series = cm.hourly_usage(((r.started_at, r.ended_at, float(r.gpu_hours)) for r in records), start, hours)
    prof = cm.profile(series)
    alt, alt_basis = _alternative(records, index, gpu_model)
    market = best_prices(load_history(session, [gpu_model], start, end), start, end)
    recs = [_recommendation(o, series, alt) for o in term_offers(index, gpu_model, provider)] if alt > 0 else []
    note = ""
    if not recs:
        note = "no recommendation: " + (
            "no price to compare a commitment with" if alt <= 0 else "no committed rate for this GPU is on offer"
        )
    total = sum(float(r.gpu_hours) for r in records)
    shares: dict[str, float] = {}
    for r in records:
        shares[r.provider] = shares.get(r.provider, 0.0) + float(r.gpu_hours)
    return {
        "gpu_model": gpu_model,
        "provider": provider,
        "runs": len(records),
        "gpu_hours_in_window": _r(sum(series)),
        "provider_share": {p: _r(h / total) if total else 0.0 for p, h in sorted(shares.items())},
        "profile": {
            "unit": "concurrent GPUs (hourly average)",
            "hours": prof.hours,
            "mean": _r(prof.mean),
            "p10": _r(prof.p10),
            "p50": _r(prof.p50),
            "p90": _r(prof.p90),
            "max": _r(prof.max),
            "trend": {
                "direction": prof.direction,
                "slope_gpus_per_30_days": _r(prof.slope_gpus_per_30_days),
                "first_half_mean": _r(prof.first_half_mean),
                "second_half_mean": _r(prof.second_half_mean),
            },
            "hourly": [_r(u) for u in series],
        },
        "alternative": {"gpu_hourly_usd": _r(alt), "basis": alt_basis},
        "recommendations": recs,
        "recommendation_note": note,
        "market": market,
        "paid": _paid(records),
        "target": _target(series, prof, alt, market, gpu_model),
    }



def gpu_models(catalog: GpuCatalog, gpu: str | None) -> list[str] | None:
    """The catalog models an export's ``gpu`` parameter names (an id or a family); None: every model."""
    if not gpu:
        return None
    models = sorted({m.id for m in catalog.matching(gpu)})
    if not models:
        raise ConfigError(f"gpu: unknown GPU {gpu!r}")
    return models

def commitment_export(engine: Engine, index: OfferIndex, catalog: GpuCatalog, params: ExportParams) -> dict[str, Any]:
    if not 1 <= params.lookback_days <= 3 * 365:
        raise ConfigError("lookback_days: must be between 1 and 1095")
    now = params.now or utcnow()
    end = now.replace(minute=0, second=0, microsecond=0)  # whole hours: the last, partial hour is left out
    hours = params.lookback_days * 24
    start = end - timedelta(hours=hours)
    models = gpu_models(catalog, params.gpu)
    with Session(engine) as session:
        records = repository.load(session, start, end, gpu_models=models, provider=params.provider)
        by_model: dict[str, list[UsageRecord]] = {}
        for r in records:
            by_model.setdefault(r.gpu_model, []).append(r)
        scopes: list[dict[str, Any]] = []
        for model, recs in sorted(by_model.items()):
            scopes.append(_scope(session, index, model, params.provider, recs, start, end, hours))
            providers: dict[str, list[UsageRecord]] = {}
            for r in recs:
                providers.setdefault(r.provider, []).append(r)
            total = sum(float(r.gpu_hours) for r in recs)
            for prov, prs in sorted(providers.items()):
                share = sum(float(r.gpu_hours) for r in prs) / total if total else 0.0
                if params.provider is None and len(providers) > 1 and share >= CONCENTRATED_SHARE:
                    scopes.append(_scope(session, index, model, prov, prs, start, end, hours))
    return {
        "generated_at": now.isoformat(),
        "window": {"from": start.isoformat(), "to": end.isoformat(), "lookback_days": params.lookback_days},
        "filters": {"gpu": params.gpu, "provider": params.provider},
        "units": {"prices": "USD per GPU-hour", "levels": "GPUs committed around the clock"},
        "scopes": scopes,
        "message": (
            "no usage in the lookback window: no commitment is recommended"
            if not scopes
            else f"{len(scopes)} section(s); levels minimise the replayed cost of the lookback"
        ),
        "method": (
            "level = cost-minimising commitment on the hourly usage series (the 1 - r/p quantile, on a grid of "
            "whole instances), checked by replaying the lookback; p = the alternative price of each section"
        ),
    }


__all__ = ["ExportParams", "commitment_export"]
