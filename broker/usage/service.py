"""Recording usage: a run reported against its placement, idempotent per ``report_id``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker.domain import COMMITTED_PURCHASES, Purchase, utcnow
from broker.store.models import Placement
from broker.usage import repository
from broker.usage.models import UsageRecord
from broker.usage.schemas import UsageReport

CENT8 = Decimal("1e-8")


class UnknownPlacement(Exception):
    """The report names a placement the broker never made."""


class ReportConflict(Exception):
    """The report_id was used before with different content."""


def purchase_class(purchase: str) -> str:
    """spot / on_demand / committed: how showback splits spend (capacity blocks are bought ahead: committed)."""
    if purchase == Purchase.SPOT:
        return "spot"
    if purchase in COMMITTED_PURCHASES or purchase == Purchase.CAPACITY_BLOCK:
        return "committed"
    return "on_demand"


def digest(fields: dict[str, Any]) -> str:
    """A stable digest of a record's reported content (decimals normalised, times in UTC)."""

    def norm(v: Any) -> Any:
        if isinstance(v, Decimal):
            return format(v.normalize(), "f")
        if hasattr(v, "astimezone"):
            return v.astimezone(UTC).isoformat()
        return v

    canonical = json.dumps({k: norm(v) for k, v in sorted(fields.items())}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PlacedOption:
    """What the placement decided, read from its stored Decision JSON."""

    provider: str
    region: str
    instance_type: str
    purchase: str
    gpu_model: str
    gpus_per_node: int
    gpu_hourly_usd: Decimal  # price per GPU-hour of the chosen option


def placed_option(p: Placement) -> PlacedOption:
    choice = (p.decision or {}).get("choice") or {}
    gpn = int(choice.get("gpus_per_node") or 0)
    nodes = int(choice.get("nodes") or 1)
    hourly = Decimal(str(choice.get("hourly_usd") or 0))
    gpus = gpn * nodes
    return PlacedOption(
        provider=str(choice.get("provider") or p.provider),
        region=str(choice.get("region") or ""),
        instance_type=str(choice.get("instance_type") or ""),
        purchase=str(choice.get("purchase") or p.purchase),
        gpu_model=str(choice.get("gpu_model") or p.gpu_model),
        gpus_per_node=gpn or 1,
        gpu_hourly_usd=hourly / gpus if gpus else hourly,
    )


def record_report(engine: Engine, placement_id: str, report: UsageReport) -> tuple[UsageRecord, bool]:
    """Store ``report``; returns (record, created). A replay of the same report returns the stored one."""
    content = report.model_dump() | {"placement_id": placement_id}
    content_hash = digest(content)
    with Session(engine, expire_on_commit=False) as session:
        existing = repository.by_report_id(session, report.report_id)
        if existing is not None:
            return _replayed(existing, content_hash)
        placement = repository.get_placement(session, placement_id)
        if placement is None:
            raise UnknownPlacement(f"no placement {placement_id!r}")
        opt = placed_option(placement)
        billed = report.billed_usd
        cost = billed if billed is not None else (report.gpu_hours * opt.gpu_hourly_usd).quantize(CENT8)
        record = UsageRecord(
            report_id=report.report_id,
            content_hash=content_hash,
            origin="report",
            placement_id=placement_id,
            received_at=utcnow(),
            started_at=report.started_at,
            ended_at=report.ended_at,
            gpu_hours=report.gpu_hours,
            interruptions=report.interruptions,
            predictions=report.predictions,
            billed_usd=billed,
            cost_usd=cost,
            cost_estimated=billed is None,
            provider=opt.provider,
            region=opt.region,
            instance_type=opt.instance_type,
            purchase=opt.purchase,
            gpu_model=opt.gpu_model,
            gpus_per_node=opt.gpus_per_node,
            labels=dict(placement.labels or {}),
        )
        session.add(record)
        try:
            session.commit()
        except IntegrityError:  # the same report_id arrived concurrently: answer as for a replay
            session.rollback()
            again = repository.by_report_id(session, report.report_id)
            if again is None:
                raise
            return _replayed(again, content_hash)
        return record, True


def _replayed(existing: UsageRecord, content_hash: str) -> tuple[UsageRecord, bool]:
    if existing.content_hash != content_hash:
        raise ReportConflict(f"report_id {existing.report_id!r} was already used with different content")
    return existing, False
