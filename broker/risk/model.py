"""The Gamma-Poisson update of an interruption rate.

Interruptions of a node follow a Poisson process with rate λ per node-hour. The prior λ ~ Gamma(a0, b0) is centred
on the placement config's rate r0 and is worth ``pseudo_hours`` of observation: a0 = r0·H0, b0 = H0. Observing k
interruptions over h node-hours gives λ | data ~ Gamma(a0 + k, b0 + h): posterior mean (a0 + k)/(b0 + h), which
moves from the prior to the observed k/h as the observed hours outweigh H0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

RiskKey = tuple[str, str, str]  # provider, region, instance type


@dataclass(frozen=True, slots=True)
class Prior:
    rate_per_hour: float
    source: str  # where the rate came from (an offer's band, the provider prior ...)
    pseudo_hours: float  # how many node-hours of observation the prior is worth


@dataclass(frozen=True, slots=True)
class Observations:
    reports: int
    interruptions: int
    node_hours: float

    @property
    def rate_per_hour(self) -> float | None:
        return self.interruptions / self.node_hours if self.node_hours > 0 else None


@dataclass(frozen=True, slots=True)
class Posterior:
    shape: float  # a
    rate: float  # b, in node-hours

    @property
    def mean(self) -> float:
        return self.shape / self.rate

    @property
    def sd(self) -> float:
        return math.sqrt(self.shape) / self.rate


def update(prior: Prior, obs: Observations) -> Posterior:
    alpha = prior.rate_per_hour * prior.pseudo_hours + obs.interruptions
    beta = prior.pseudo_hours + obs.node_hours
    if beta <= 0:  # no prior weight and no exposure: the prior mean is all there is
        return Posterior(shape=prior.rate_per_hour, rate=1.0)
    return Posterior(shape=alpha, rate=beta)


@dataclass(frozen=True, slots=True)
class RiskEntry:
    key: RiskKey
    prior: Prior
    observations: Observations
    posterior: Posterior


class RiskTable:
    """Posterior interruption rates for the (provider, region, instance type) triples with reported spot runs."""

    def __init__(self, entries: Iterable[RiskEntry]) -> None:
        self.entries: Mapping[RiskKey, RiskEntry] = {e.key: e for e in entries}

    def posterior_rate(self, provider: str, region: str, instance_type: str) -> float | None:
        """Spot interruptions per node-hour learned for this triple; None where no run was reported (placement
        then keeps its own prior)."""
        entry = self.entries.get((provider, region, instance_type))
        return entry.posterior.mean if entry is not None else None
