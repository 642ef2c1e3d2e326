"""Building the risk table: each triple's prior from placement's own rules, updated with reported spot runs.

The prior is what placement would use without observations (``broker.placement.engine.spot_rate``: the offer's
measured rate, else its interruption band's, else the provider prior), so the posterior replaces like with like.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from broker.domain import ConfigError, Purchase, utcnow
from broker.offers.index import IndexedOffer, OfferIndex
from broker.placement.costmodel import PlacementConfig
from broker.placement.engine import spot_rate
from broker.risk import repository
from broker.risk.model import Observations, Prior, RiskEntry, RiskKey, RiskTable, update
from broker.runtime import Runtime

# Default weight of the prior, in node-hours of observation. The configured rates pool traces whose per-zone rates
# spread about ±40 % around the pooled value (config/placement.toml); a day of exposure (about 11 interruptions at
# 0.47/h, coefficient of variation 1/sqrt(11) = 0.3) expresses that spread. Override: placement.risk_prior_hours.
DEFAULT_PRIOR_HOURS = 24.0
_CACHE_KEY = "risk_table"


def prior_for(key: RiskKey, index: OfferIndex, cfg: PlacementConfig, pseudo_hours: float) -> Prior:
    provider, region, instance_type = key
    offers = [
        o
        for o in index.offers
        if o.key.purchase == Purchase.SPOT
        and (o.key.provider, o.key.region, o.key.instance_type) == (provider, region, instance_type)
    ]
    if not offers:
        return Prior(cfg.provider_rate(provider), f"{provider} prior (no current spot offer)", pseudo_hours)
    rated = [spot_rate(o, cfg) for o in offers]
    sources = sorted({s for _, s in rated})
    rate = sum(r for r, _ in rated) / len(rated)
    source = sources[0] if len(sources) == 1 else f"mean over {len(rated)} zone offers ({'; '.join(sources)})"
    return Prior(rate, source, pseudo_hours)


def build(
    observations: Mapping[RiskKey, Observations], index: OfferIndex, cfg: PlacementConfig, pseudo_hours: float
) -> RiskTable:
    entries = []
    for key, obs in sorted(observations.items()):
        prior = prior_for(key, index, cfg, pseudo_hours)
        entries.append(RiskEntry(key, prior, obs, update(prior, obs)))
    return RiskTable(entries)


def prior_hours(settings_placement: Mapping[str, Any]) -> float:
    raw = settings_placement.get("risk_prior_hours", DEFAULT_PRIOR_HOURS)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise ConfigError(f"placement.risk_prior_hours: must be a number >= 0, got {raw!r}")
    return float(raw)


def risk_table(runtime: Runtime) -> RiskTable:
    """The current table, rebuilt only when usage records or the offer index changed (cheap to call per request)."""
    index = runtime.index.current
    with runtime.engine.connect() as conn:
        version = repository.usage_version(conn)
        cached = runtime.extras.get(_CACHE_KEY)
        if isinstance(cached, tuple) and cached[0] == version and cached[1] is index:
            table: RiskTable = cached[2]
            return table
        observations = repository.spot_observations(conn)
    table = build(observations, index, runtime.placement_config, prior_hours(runtime.settings.placement))
    runtime.extras[_CACHE_KEY] = (version, index, table)
    return table


def with_learned_rates(
    offers: list[IndexedOffer],
    observations: Mapping[RiskKey, Observations],
    cfg: PlacementConfig,
    pseudo_hours: float,
) -> list[IndexedOffer]:
    """Spot offers with reported runs carry their posterior interruption rate, which placement then uses."""
    if not observations:
        return offers
    table = build(observations, OfferIndex.build(offers, utcnow()), cfg, pseudo_hours)
    out: list[IndexedOffer] = []
    for o in offers:
        rate = table.posterior_rate(o.key.provider, o.key.region, o.key.instance_type)
        if rate is None or o.key.purchase != Purchase.SPOT:
            out.append(o)
            continue
        attrs = {
            **o.attrs,
            "interruption_rate_per_hour": rate,
            "interruption_rate_source": "learned from reported runs",
        }
        out.append(replace(o, attrs=attrs))
    return out
