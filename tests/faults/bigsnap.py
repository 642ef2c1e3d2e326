"""A large, deterministic snapshot universe for the fault tests (shared by the test and its child processes).

Version 0 lists offers 0..n-1. Version 1 changes a third of the prices, withdraws the first 5% (omits them from a
complete snapshot) and adds 5% new offers: every kind of write an ingest makes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from broker.domain import Availability, OfferKey, PriceObservation, Snapshot

PROVIDERS = ("aws", "gcp", "azure", "lambda", "crusoe", "coreweave")
GPUS = (("H100-SXM", 8), ("A100-80GB", 8), ("L40S", 1), ("L4", 1), ("H200", 8), ("A10G", 1))
T0 = datetime(2026, 11, 1, tzinfo=UTC)
SOURCE = "bulk"


def price(i: int, version: int) -> Decimal:
    base = Decimal(1 + i % 97) + Decimal(i % 1000) / Decimal(1000)
    return base + Decimal("0.25") * version if i % 3 == 0 else base


def indices(n: int, version: int) -> range:
    return range(0, n) if version == 0 else range(n // 20, n + n // 20)


def observation(i: int, version: int) -> PriceObservation:
    gpu, count = GPUS[i % len(GPUS)]
    return PriceObservation(
        key=OfferKey(
            provider=PROVIDERS[i % len(PROVIDERS)],
            region=f"region-{i % 40}",
            zone="",
            instance_type=f"type-{i}",
            purchase="spot" if i % 4 == 0 else "on_demand",
        ),
        hourly_usd=price(i, version),
        gpu_name=gpu,
        gpu_count=count,
        gpu_memory_gb=None,
        vcpus=32,
        memory_gb=256,
        availability=Availability.AVAILABLE if i % 5 else Availability.UNKNOWN,
    )


def snapshot(n: int, version: int, source: str = SOURCE) -> Snapshot:
    return Snapshot(
        source=source,
        naming="canonical",
        taken_at=T0 + timedelta(minutes=10 * version),
        observations=[observation(i, version) for i in indices(n, version)],
        complete=True,
    )


def expected_prices(n: int, version: int) -> dict[str, Decimal]:
    return {f"type-{i}": price(i, version) for i in indices(n, version)}


def snapshot_json(n: int, version: int, taken_at: datetime | None = None) -> dict[str, object]:
    """The same universe in the file source's interchange format (gpu-broker.snapshot/v1)."""
    offers = []
    for i in indices(n, version):
        o = observation(i, version)
        offers.append(
            {
                "provider": o.key.provider, "region": o.key.region, "instance_type": o.key.instance_type,
                "purchase": o.key.purchase, "gpu": o.gpu_name, "gpu_count": o.gpu_count, "vcpus": o.vcpus,
                "memory_gb": o.memory_gb, "hourly_usd": str(o.hourly_usd), "currency": "USD",
                "availability": str(o.availability),
            }
        )  # fmt: skip
    at = taken_at or T0 + timedelta(minutes=10 * version)
    return {
        "format": "gpu-broker.snapshot/v1",
        "taken_at": at.isoformat().replace("+00:00", "Z"),
        "complete": True,
        "naming": "canonical",
        "offers": offers,
    }
