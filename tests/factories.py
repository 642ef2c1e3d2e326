"""Small builders for snapshots and observations used across tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from broker.domain import Availability, OfferKey, PriceObservation, Snapshot

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def obs(
    instance_type: str = "p5.48xlarge",
    price: str | Decimal = "98.32",
    *,
    provider: str = "aws",
    region: str = "us-east-1",
    zone: str = "",
    purchase: str = "on_demand",
    term: str = "",
    gpu: str = "H100-SXM",
    gpus: int = 8,
    currency: str = "USD",
    availability: Availability = Availability.UNKNOWN,
) -> PriceObservation:
    return PriceObservation(
        key=OfferKey(
            provider=provider, region=region, zone=zone, instance_type=instance_type, purchase=purchase, term=term
        ),
        hourly_usd=Decimal(price),
        gpu_name=gpu,
        gpu_count=gpus,
        gpu_memory_gb=None,
        vcpus=192,
        memory_gb=2048,
        currency=currency,
        availability=availability,
    )


def snap(
    observations: list[PriceObservation],
    *,
    at: datetime = T0,
    source: str = "test",
    complete: bool = True,
    minutes: int = 0,
) -> Snapshot:
    return Snapshot(
        source=source,
        naming="canonical",
        taken_at=at + timedelta(minutes=minutes),
        observations=observations,
        complete=complete,
    )


def universe(n: int, price: str = "10.00") -> list[PriceObservation]:
    return [obs(f"type-{i}", price, gpu="A100-80GB") for i in range(n)]
