"""The usage report a client posts after a run, and the stored record as the API shows it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from broker.usage.models import UsageRecord


class UsageReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    report_id: str = Field(min_length=1, max_length=100, description="idempotency key chosen by the client")
    started_at: AwareDatetime
    ended_at: AwareDatetime
    gpu_hours: Decimal = Field(ge=0, le=Decimal(10) ** 9, description="GPUs x hours actually run")
    interruptions: int = Field(default=0, ge=0, le=1_000_000)
    billed_usd: Decimal | None = Field(default=None, ge=0, le=Decimal(10) ** 10)
    predictions: int | None = Field(default=None, ge=0, le=10**15, description="predictions served or scored")

    @model_validator(mode="after")
    def _ordered(self) -> UsageReport:
        if self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self


def _num(x: Decimal | None) -> float | None:
    return None if x is None else float(x)


def _iso(t: datetime) -> str:
    return t.isoformat()


def record_out(r: UsageRecord) -> dict[str, Any]:
    return {
        "report_id": r.report_id,
        "placement_id": r.placement_id,
        "origin": r.origin,
        "started_at": _iso(r.started_at),
        "ended_at": _iso(r.ended_at),
        "gpu_hours": _num(r.gpu_hours),
        "interruptions": r.interruptions,
        "predictions": r.predictions,
        "billed_usd": _num(r.billed_usd),
        "cost_usd": _num(r.cost_usd),
        "cost_estimated": r.cost_estimated,
        "provider": r.provider,
        "region": r.region,
        "instance_type": r.instance_type,
        "purchase": r.purchase,
        "gpu_model": r.gpu_model,
        "labels": r.labels,
    }
