"""Reads of current offers from the store (the offer index is built from these)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, func, select

from broker.domain import Availability, OfferKey
from broker.offers.index import IndexedOffer
from broker.store.models import AvailabilityInterval, Offer, PollRun, PriceInterval, SourceState, table

OC, P, A, S = table(Offer).c, table(PriceInterval).c, table(AvailabilityInterval).c, table(SourceState).c


def load_current(conn: Connection) -> list[IndexedOffer]:
    """Every live offer with its current price and availability."""
    stmt = (
        select(
            OC.id,
            OC.provider,
            OC.region,
            OC.zone,
            OC.instance_type,
            OC.purchase,
            OC.term,
            OC.payment,
            OC.plan,
            OC.source,
            OC.gpu_model,
            OC.gpu_known,
            OC.gpu_count,
            OC.gpu_memory_gb,
            OC.vcpus,
            OC.memory_gb,
            OC.attrs,
            OC.demo,
            P.hourly_usd,
            P.list_hourly_usd,
            P.valid_from,
            P.last_confirmed_at,
            S.last_complete_at,
            A.state,
            A.quantity,
        )
        .select_from(
            table(Offer)
            .join(table(PriceInterval), and_(P.offer_id == OC.id, P.valid_to.is_(None)))
            .outerjoin(table(AvailabilityInterval), and_(A.offer_id == OC.id, A.valid_to.is_(None)))
            .outerjoin(table(SourceState), S.source == OC.source)
        )
        .where(OC.withdrawn_at.is_(None))
    )
    out: list[IndexedOffer] = []
    for r in conn.execute(stmt):
        confirmed: datetime = r.last_confirmed_at
        if r.last_complete_at is not None and r.last_complete_at > confirmed:
            confirmed = r.last_complete_at
        out.append(
            IndexedOffer(
                offer_id=r.id,
                key=OfferKey(
                    provider=r.provider,
                    region=r.region,
                    zone=r.zone,
                    instance_type=r.instance_type,
                    purchase=r.purchase,
                    term=r.term,
                    payment=r.payment,
                    plan=r.plan,
                ),
                source=r.source,
                gpu_model=r.gpu_model,
                gpu_known=r.gpu_known,
                gpu_count=r.gpu_count,
                gpu_memory_gb=r.gpu_memory_gb,
                vcpus=r.vcpus,
                memory_gb=r.memory_gb,
                hourly_usd=float(r.hourly_usd),
                list_hourly_usd=float(r.list_hourly_usd) if r.list_hourly_usd is not None else None,
                observed_at=r.valid_from,
                last_confirmed_at=confirmed,
                availability=Availability(r.state) if r.state else Availability.UNKNOWN,
                available_quantity=r.quantity,
                attrs=r.attrs or {},
                demo=r.demo,
            )
        )
    return out


def data_version(conn: Connection) -> int:
    """Changes whenever a poll is recorded: replicas compare it to know when to rebuild their index."""
    return int(conn.execute(select(func.coalesce(func.max(table(PollRun).c.id), 0))).scalar_one())
