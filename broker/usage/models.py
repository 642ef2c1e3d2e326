"""The ``usage_records`` table: one row per reported run or imported FOCUS usage row.

Placement facts (provider, region, instance type, purchase, GPU model, team labels) are copied onto the row when it
is written, so showback and the commitment export read one table and imported rows (no placement) look the same.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from broker.store.models import USD, Base, BigId, UtcDateTime

GPU_HOURS = Numeric(18, 6, asdecimal=True)


class UsageRecord(Base):
    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_started_at", "started_at"),
        Index("ix_usage_records_gpu_model_ended_at", "gpu_model", "ended_at"),
        Index("ix_usage_records_placement_id", "placement_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # the client's idempotency key; imported rows get "focus:<digest of the row>"
    report_id: Mapped[str] = mapped_column(String(128), unique=True)
    # a digest of what was reported: a replay with the same report_id must carry the same content
    content_hash: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(16))  # "report" | "focus"
    placement_id: Mapped[str | None] = mapped_column(ForeignKey("placements.id", ondelete="SET NULL"))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    gpu_hours: Mapped[Decimal] = mapped_column(GPU_HOURS)
    interruptions: Mapped[int] = mapped_column(Integer, default=0)
    predictions: Mapped[int | None] = mapped_column(BigInteger)
    billed_usd: Mapped[Decimal | None] = mapped_column(USD)
    # what the run cost: billed_usd when known, else gpu_hours at the placement's price per GPU-hour
    cost_usd: Mapped[Decimal] = mapped_column(USD)
    cost_estimated: Mapped[bool] = mapped_column(Boolean)
    provider: Mapped[str] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(64))
    instance_type: Mapped[str] = mapped_column(String(128))
    purchase: Mapped[str] = mapped_column(String(32))
    gpu_model: Mapped[str] = mapped_column(String(128))
    gpus_per_node: Mapped[int] = mapped_column(Integer)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
