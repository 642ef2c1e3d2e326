"""Derived history tables: daily roll-ups of closed days, so a year of history is read in a few thousand rows.

Nothing here is a source of truth: ``price_intervals`` and ``poll_runs`` are. Every row can be rebuilt from them
(``broker.history.rollup.refresh`` does, incrementally), and a poll recorded late for a rolled-up day (a backfill)
makes the roll-up rebuild from that day. Aggregates are floats: they feed charts and statistics, not billing.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from broker.store.models import USD, Base, PollRun, PriceInterval, UtcDateTime, table


class PriceDaily(Base):
    """Per offer class (GPU model, provider, purchase option) and UTC day: the step-function aggregates,
    per GPU-hour (``_g``) and per instance-hour (``_i``). ``secs`` is offer-seconds with a price in force;
    ``ws_*`` the price x seconds sums (time-weighted mean = ws / secs); ``last_*`` the lowest price in force at
    the end of the day (NULL: none was)."""

    __tablename__ = "history_price_daily"
    # clustered by model then day on SQLite: a model's year is one contiguous read, already in day order
    __table_args__ = {"sqlite_with_rowid": False}

    gpu_model: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)  # days since 1970-01-01 (UTC)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    purchase: Mapped[str] = mapped_column(String(32), primary_key=True)
    secs: Mapped[int] = mapped_column(BigInteger)
    mn_g: Mapped[float] = mapped_column(Float)
    mx_g: Mapped[float] = mapped_column(Float)
    ws_g: Mapped[float] = mapped_column(Float)
    last_g: Mapped[float | None] = mapped_column(Float)
    mn_i: Mapped[float] = mapped_column(Float)
    mx_i: Mapped[float] = mapped_column(Float)
    ws_i: Mapped[float] = mapped_column(Float)
    last_i: Mapped[float | None] = mapped_column(Float)


class PollGap(Base):
    """A stretch without an applied poll of a source, found in rolled-up days: from the last poll before it to the
    first after it (``seconds`` apart). Stored when longer than 1.5x the source's median poll spacing; queries
    keep those beyond their own threshold (2.5x the configured interval)."""

    __tablename__ = "history_poll_gaps"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    gap_from: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    gap_to: Mapped[datetime] = mapped_column(UtcDateTime)
    seconds: Mapped[int] = mapped_column(BigInteger)


class Withdrawal(Base):
    """An offer's price closed without a new one opening at once (withdrawn), found in rolled-up days."""

    __tablename__ = "history_withdrawals"

    offer_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True
    )
    gone_at: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)


class PriceCutoff(Base):
    """Per offer: the price in force at a roll-up cut-off (``day``: the UTC midnight ``built_to``, in days since
    1970-01-01) and its interval, with the offer's class as the roll-up saw it. A query's open tail after the
    roll-up reads these instead of seeking every offer's interval at the cut-off; whether the interval has closed
    since is looked up among the closes after the cut-off at query time. The latest two cut-offs are kept, so a
    query that started before a concurrent build moved ``built_to`` on still finds its own."""

    __tablename__ = "history_price_cutoff"
    # clustered by cut-off then model on SQLite: one model's offers are one contiguous read
    __table_args__ = {"sqlite_with_rowid": False}

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    gpu_model: Mapped[str] = mapped_column(String(128), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    purchase: Mapped[str] = mapped_column(String(32), primary_key=True)
    # no foreign keys: offers are never deleted, and a vanished interval drops out of the join that reads it
    offer_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    gpu_count: Mapped[int] = mapped_column(Integer)
    interval_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    hourly_usd: Mapped[Decimal] = mapped_column(USD)  # the interval's (exact, as stored there)


class RollupState(Base):
    """How far the roll-ups reach (exclusive, a UTC midnight), the last poll run they account for, and the
    cut-off whose prices ``history_price_cutoff`` holds (equal to ``built_to`` once the build has written them)."""

    __tablename__ = "history_rollup_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    built_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    run_id: Mapped[int] = mapped_column(BigInteger, default=0)
    cutoff_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# Closes and opens by time, with the offer (and the price): the roll-up finds withdrawals (a close with no
# reopening) per day, and a query's open tail after the roll-up reads the prices set and closed since the cut-off,
# from the index alone: a range of index pages, not a page per price or a seek per offer.
# PostgreSQL's indexes carry the id too (SQLite's carry the rowid anyway), for index-only scans there.
_prices = table(PriceInterval).c
Index("ix_price_intervals_valid_to", _prices.valid_to, _prices.offer_id, postgresql_include=["id"])
Index(
    "ix_price_intervals_valid_from", _prices.valid_from, _prices.offer_id, _prices.hourly_usd, postgresql_include=["id"]
)
# Polls by the time their data was seen: gap detection walks a source's polls in that order.
Index("ix_poll_runs_source_taken", table(PollRun).c.source, table(PollRun).c.snapshot_taken_at)
