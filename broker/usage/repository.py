"""Reads and writes of usage records and the placements they belong to."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.store.models import Offer, Placement
from broker.usage.models import UsageRecord


def get_placement(session: Session, placement_id: str) -> Placement | None:
    return session.get(Placement, placement_id)


def by_report_id(session: Session, report_id: str) -> UsageRecord | None:
    return session.scalars(select(UsageRecord).where(UsageRecord.report_id == report_id)).one_or_none()


def existing_report_ids(session: Session, report_ids: Iterable[str]) -> dict[str, str]:
    """report_id -> content_hash for the ids already stored."""
    ids = list(report_ids)
    found: dict[str, str] = {}
    for start in range(0, len(ids), 500):  # stay under every database's bound-parameter limit
        chunk = ids[start : start + 500]
        rows = session.execute(
            select(UsageRecord.report_id, UsageRecord.content_hash).where(UsageRecord.report_id.in_(chunk))
        )
        found.update({r.report_id: r.content_hash for r in rows})
    return found


def load(
    session: Session,
    start: datetime,
    end: datetime,
    *,
    gpu_models: Sequence[str] | None = None,
    provider: str | None = None,
    started_in_window: bool = False,
) -> list[UsageRecord]:
    """Records overlapping [start, end) (or, with ``started_in_window``, those that started in it)."""
    stmt = select(UsageRecord)
    if started_in_window:
        stmt = stmt.where(UsageRecord.started_at >= start, UsageRecord.started_at < end)
    else:
        stmt = stmt.where(UsageRecord.started_at < end, UsageRecord.ended_at > start)
    if gpu_models is not None:
        stmt = stmt.where(UsageRecord.gpu_model.in_(list(gpu_models)))
    if provider is not None:
        stmt = stmt.where(UsageRecord.provider == provider)
    return list(session.scalars(stmt.order_by(UsageRecord.started_at, UsageRecord.id)))


def instance_gpus(session: Session, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, int]]:
    """(provider, instance type) -> (GPU model, GPUs per instance) from the offers the broker has seen."""
    wanted = set(pairs)
    if not wanted:
        return {}
    providers = sorted({p for p, _ in wanted})
    rows = session.execute(
        select(Offer.provider, Offer.instance_type, Offer.gpu_model, Offer.gpu_count)
        .where(Offer.provider.in_(providers), Offer.gpu_known.is_(True), Offer.gpu_count > 0)
        .distinct()
    )
    found = {(r.provider, r.instance_type): (r.gpu_model, r.gpu_count) for r in rows}
    return {k: v for k, v in found.items() if k in wanted}
