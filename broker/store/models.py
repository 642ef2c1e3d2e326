"""Database tables (SQLAlchemy 2). One Alembic history creates them on SQLite and PostgreSQL alike.

Prices are exact decimals in USD per instance-hour. Price and availability tables are change-only: a row opens
when a value changes and closes (``valid_to``) when it changes again or the offer is withdrawn.

The interval tables reference ``offers.id`` (and prices ``poll_runs.id``) without foreign keys: on PostgreSQL a
foreign key is checked by a trigger per inserted row, which cost more than half the server time of a first
100k-offer snapshot. Integrity holds without them: offers and poll runs are never deleted (an offer is withdrawn,
a run is the audit trail), and the only writers of interval rows (``broker.store.ingest``, and
``broker.store.backfill``) use ids that they inserted or read in the same transaction. tests/store checks that no
interval ever points at a missing offer or run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

USD = Numeric(18, 8, asdecimal=True)
# SQLite has no BIGINT autoincrement: a plain INTEGER primary key is its rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on both databases (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store: timestamps must be timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Offer(Base):
    __tablename__ = "offers"
    __table_args__ = (
        # Each source owns its offers: a catalog listing Lambda's prices does not overwrite the Lambda adapter's.
        # The natural key is unique through its digest (``broker.store.ingest.offer_key_hash``): one 16-byte column
        # indexes several times faster than the eight key columns, and the index serves lookups by source too.
        UniqueConstraint("source", "key_hash", name="uq_offers_source_key_hash"),
        Index("ix_offers_gpu_model", "gpu_model"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(64))
    zone: Mapped[str] = mapped_column(String(64), default="")
    instance_type: Mapped[str] = mapped_column(String(128))
    purchase: Mapped[str] = mapped_column(String(32))
    term: Mapped[str] = mapped_column(String(8), default="")
    payment: Mapped[str] = mapped_column(String(32), default="")
    plan: Mapped[str] = mapped_column(String(128), default="")
    source: Mapped[str] = mapped_column(String(64))
    # digest of the key columns above (provider .. plan); ingest matches and inserts by it
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(16))
    gpu_model: Mapped[str] = mapped_column(String(128))
    gpu_known: Mapped[bool] = mapped_column(Boolean)
    gpu_raw_name: Mapped[str] = mapped_column(String(128))
    gpu_count: Mapped[int] = mapped_column(Integer)
    gpu_memory_gb: Mapped[float | None] = mapped_column(Float)
    vcpus: Mapped[float | None] = mapped_column(Float)
    memory_gb: Mapped[float | None] = mapped_column(Float)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    # digest of the descriptive columns above, so ingest compares one value instead of loading them all
    meta_hash: Mapped[str] = mapped_column(String(32), default="")
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PriceInterval(Base):
    """One price of one offer, held from ``valid_from`` until ``valid_to`` (NULL: still current)."""

    __tablename__ = "price_intervals"
    __table_args__ = (
        Index("ix_price_intervals_offer_from", "offer_id", "valid_from"),
        Index(
            "ix_price_intervals_current",
            "offer_id",
            postgresql_where=text("valid_to IS NULL"),
            sqlite_where=text("valid_to IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # offers.id and poll_runs.id without foreign keys: see the module docstring
    offer_id: Mapped[int] = mapped_column(BigId)
    hourly_usd: Mapped[Decimal] = mapped_column(USD)
    list_hourly_usd: Mapped[Decimal | None] = mapped_column(USD)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Written when the row opens or closes, and by partial polls. A complete poll confirms every live offer of its
    # source at once through SourceState.last_complete_at, so an unchanged price costs no write.
    last_confirmed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    poll_run_id: Mapped[int | None] = mapped_column(BigId)


class AvailabilityInterval(Base):
    __tablename__ = "availability_intervals"
    __table_args__ = (
        Index("ix_availability_intervals_offer_from", "offer_id", "valid_from"),
        Index(
            "ix_availability_intervals_current",
            "offer_id",
            postgresql_where=text("valid_to IS NULL"),
            sqlite_where=text("valid_to IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    offer_id: Mapped[int] = mapped_column(BigId)  # offers.id, no foreign key (see the module docstring)
    state: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_confirmed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PollRun(Base):
    __tablename__ = "poll_runs"
    __table_args__ = (Index("ix_poll_runs_source_started", "source", "started_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    snapshot_taken_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    offers_seen: Mapped[int] = mapped_column(Integer, default=0)
    offers_new: Mapped[int] = mapped_column(Integer, default=0)
    prices_changed: Mapped[int] = mapped_column(Integer, default=0)
    offers_withdrawn: Mapped[int] = mapped_column(Integer, default=0)
    # offers whose row in the offer index changed (listing, price, availability, own confirmation), an upper
    # bound; 0: the poll only confirmed its prices, which replicas apply without reloading the index
    offers_changed: Mapped[int | None] = mapped_column(Integer)
    rejected: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)


class SourceState(Base):
    """Per source: when its last complete snapshot was applied (confirms every live offer of the source)."""

    __tablename__ = "source_state"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_complete_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_run_id: Mapped[int | None] = mapped_column(BigId)


class Lease(Base):
    """A named lease so replicas sharing one database run each scheduled poll once."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Placement(Base):
    __tablename__ = "placements"
    __table_args__ = (Index("ix_placements_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    decision: Mapped[dict[str, Any]] = mapped_column(JSON)
    provider: Mapped[str] = mapped_column(String(64))
    purchase: Mapped[str] = mapped_column(String(32))
    gpu_model: Mapped[str] = mapped_column(String(128))
    expected_cost_usd: Mapped[Decimal] = mapped_column(USD)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


def table(model: type[Base]) -> Table:
    """A mapped class's Table, typed as one (``__table__`` is typed as a generic FromClause)."""
    return cast(Table, model.__table__)


# Tables of other domain packages register on Base.metadata when imported (Alembic and the tests see them all).
import broker.auth.models  # noqa: E402
import broker.history.models  # noqa: E402
import broker.usage.models  # noqa: E402, F401
