"""Domain types shared by adapters, ingest, the offer index and placement.

Adapters depend on this module (and on ``broker.gpus``) only: never on the database or the web layer.
Prices are USD per *instance*-hour; the per-GPU-hour price is derived where it is shown.
All timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


class Purchase(StrEnum):
    ON_DEMAND = "on_demand"
    SPOT = "spot"
    RESERVED = "reserved"
    SAVINGS_PLAN = "savings_plan"
    COMMITTED_USE = "committed_use"
    CAPACITY_BLOCK = "capacity_block"
    CONTRACT = "contract"


COMMITTED_PURCHASES = frozenset({Purchase.RESERVED, Purchase.SAVINGS_PLAN, Purchase.COMMITTED_USE, Purchase.CONTRACT})


class Payment(StrEnum):
    """How a reserved term is paid; the upfront part is amortised into the hourly rate."""

    NO_UPFRONT = "no_upfront"
    PARTIAL_UPFRONT = "partial_upfront"
    ALL_UPFRONT = "all_upfront"


class Availability(StrEnum):
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"


class Outcome(StrEnum):
    OK = "ok"
    PARTIAL = "partial"  # some pages/regions failed, or rows were rejected: what was seen is applied
    FAILED = "failed"  # nothing applied
    SUSPECT = "suspect"  # would have withdrawn too much: prices applied, nothing withdrawn


HOURS_PER_YEAR = Decimal(8760)
TERM_HOURS = {"1y": HOURS_PER_YEAR, "3y": 3 * HOURS_PER_YEAR}


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class OfferKey:
    """What identifies an offer. Empty strings stand for "not applicable" (they index better than NULL)."""

    provider: str
    region: str
    instance_type: str
    purchase: str
    zone: str = ""
    term: str = ""  # "1y" / "3y" for committed purchases
    payment: str = ""  # a Payment value for reserved terms
    plan: str = ""  # qualifier: "standard"/"convertible" RI, "compute"/"ec2_instance" SP, a rate card name...


@dataclass(slots=True)
class PriceObservation:
    """One offer's price as a source saw it. Ingest validates it; adapters may pass raw values through."""

    key: OfferKey
    hourly_usd: Decimal  # per instance-hour, effective (what the user pays)
    gpu_name: str  # the source's own spelling; resolved to a catalog model at ingest
    gpu_count: int
    gpu_memory_gb: float | None = None
    vcpus: float | None = None
    memory_gb: float | None = None
    currency: str = "USD"
    list_hourly_usd: Decimal | None = None  # the public list price when hourly_usd is a negotiated one
    availability: Availability = Availability.UNKNOWN
    available_quantity: int | None = None
    attrs: dict[str, Any] = field(default_factory=dict)  # e.g. spot interruption band, price source, arch


@dataclass(slots=True)
class Snapshot:
    """Everything one poll of one source saw.

    ``complete`` means the source listed everything it offers: offers missing from a complete snapshot are
    withdrawn. A snapshot built from a listing with a failed page must say ``complete=False``.
    """

    source: str
    naming: str  # which alias namespace of the GPU catalog its gpu_name values use (aws, gcp, azure ...)
    taken_at: datetime
    observations: list[PriceObservation] = field(default_factory=list)
    complete: bool = True
    rejected: Counter[str] = field(default_factory=Counter)  # rows the adapter refused, by reason
    warnings: list[str] = field(default_factory=list)
    demo: bool = False


class SourceError(Exception):
    """A poll failed in a way a person can act on (credentials, throttling, bad payload...)."""


class ConfigError(Exception):
    """A setting is wrong: the message names the setting and what is wrong, in one line."""


class TransientSourceError(SourceError):
    """A failure worth retrying (throttling, a 5xx, a dropped connection): the poll retries it with backoff."""
