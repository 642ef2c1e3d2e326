"""Price history reads for usage: the on-demand list price in force when a run happened, and market evidence.

Prices are compared per GPU-hour (an offer's hourly USD divided by its GPUs), so an 8-GPU instance and a 1-GPU one
of the same model compare directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from broker.domain import Purchase
from broker.store.models import Offer, PriceInterval


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One price of one offer and the time it was in force (``valid_to`` None: still current)."""

    provider: str
    region: str
    instance_type: str
    purchase: str
    term: str
    payment: str
    plan: str
    gpu_model: str
    gpu_count: int
    hourly_usd: Decimal  # per instance-hour, effective
    list_hourly_usd: Decimal | None
    valid_from: datetime
    valid_to: datetime | None

    @property
    def gpu_hourly_usd(self) -> Decimal:
        return self.hourly_usd / self.gpu_count

    @property
    def list_gpu_hourly_usd(self) -> Decimal:
        """The public list price per GPU-hour (the effective one where no list price is given)."""
        return (self.list_hourly_usd if self.list_hourly_usd is not None else self.hourly_usd) / self.gpu_count

    def in_force(self, t: datetime) -> bool:
        return self.valid_from <= t and (self.valid_to is None or t < self.valid_to)


def load_history(
    session: Session,
    gpu_models: Iterable[str],
    start: datetime,
    end: datetime,
    purchases: Sequence[str] | None = None,
    provider: str | None = None,
) -> list[PricePoint]:
    """Every price of these GPU models that was in force at some time in [start, end)."""
    models = sorted(set(gpu_models))
    if not models:
        return []
    stmt = (
        select(
            Offer.provider,
            Offer.region,
            Offer.instance_type,
            Offer.purchase,
            Offer.term,
            Offer.payment,
            Offer.plan,
            Offer.gpu_model,
            Offer.gpu_count,
            PriceInterval.hourly_usd,
            PriceInterval.list_hourly_usd,
            PriceInterval.valid_from,
            PriceInterval.valid_to,
        )
        .join(PriceInterval, PriceInterval.offer_id == Offer.id)
        .where(
            Offer.gpu_model.in_(models),
            Offer.gpu_known.is_(True),
            Offer.gpu_count > 0,
            PriceInterval.valid_from < end,
            or_(PriceInterval.valid_to.is_(None), PriceInterval.valid_to > start),
        )
    )
    if purchases is not None:
        stmt = stmt.where(Offer.purchase.in_(list(purchases)))
    if provider is not None:
        stmt = stmt.where(Offer.provider == provider)
    return [PricePoint(**row._asdict()) for row in session.execute(stmt)]


@dataclass(frozen=True, slots=True)
class Reference:
    gpu_hourly_usd: Decimal  # on-demand list price per GPU-hour
    basis: str  # "same_region" | "same_provider" | "market_cheapest"
    provider: str
    region: str
    instance_type: str


class OnDemandReference:
    """The on-demand list price per GPU-hour in force at a time: the same provider's (its region first, else its
    cheapest region), else the cheapest provider's. Which one was used is returned as ``basis``."""

    def __init__(self, points: Iterable[PricePoint]) -> None:
        self._by_model: dict[str, list[PricePoint]] = {}
        for p in points:
            if p.purchase == Purchase.ON_DEMAND:
                self._by_model.setdefault(p.gpu_model, []).append(p)

    @classmethod
    def load(cls, session: Session, gpu_models: Iterable[str], start: datetime, end: datetime) -> OnDemandReference:
        return cls(load_history(session, gpu_models, start, end, purchases=[Purchase.ON_DEMAND.value]))

    def at(self, gpu_model: str, provider: str, region: str, t: datetime) -> Reference | None:
        live = [p for p in self._by_model.get(gpu_model, ()) if p.in_force(t)]
        if not live:
            return None
        for basis, chosen in (
            ("same_region", [p for p in live if p.provider == provider and p.region == region]),
            ("same_provider", [p for p in live if p.provider == provider]),
            ("market_cheapest", live),
        ):
            if chosen:
                best = min(chosen, key=lambda p: (p.list_gpu_hourly_usd, p.region, p.instance_type))
                return Reference(best.list_gpu_hourly_usd, basis, best.provider, best.region, best.instance_type)
        return None
