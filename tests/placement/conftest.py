from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broker.domain import Availability, OfferKey
from broker.gpus import GpuCatalog
from broker.offers.index import IndexedOffer, OfferIndex
from broker.placement import PlacementConfig, PlaceRequest
from tests.conftest import ROOT

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


@pytest.fixture(scope="session")
def catalog() -> GpuCatalog:
    return GpuCatalog.load()


@pytest.fixture(scope="session")
def cfg() -> PlacementConfig:
    return PlacementConfig.load(ROOT / "config" / "placement.toml", ROOT / "config" / "egress.toml")


def offer(
    provider: str = "aws",
    region: str = "us-east-1",
    instance_type: str = "p4d.24xlarge",
    purchase: str = "on_demand",
    *,
    gpu: str = "A100-80GB",
    gpus: int = 8,
    hourly: float = 20.0,
    zone: str = "",
    age_minutes: float = 5,
    availability: Availability = Availability.AVAILABLE,
    source: str | None = None,
    attrs: dict[str, Any] | None = None,
    known: bool = True,
    **extra: Any,
) -> IndexedOffer:
    seen = NOW - timedelta(minutes=age_minutes)
    return IndexedOffer(
        offer_id=next(_ids),
        key=OfferKey(provider, region, instance_type, purchase, zone=zone, term=extra.pop("term", "")),
        source=source or provider,
        gpu_model=gpu,
        gpu_known=known,
        gpu_count=gpus,
        gpu_memory_gb=None,
        vcpus=extra.pop("vcpus", None),
        memory_gb=extra.pop("memory_gb", None),
        hourly_usd=hourly,
        list_hourly_usd=extra.pop("list_hourly", None),
        observed_at=seen,
        last_confirmed_at=seen,
        availability=availability,
        available_quantity=extra.pop("available_quantity", None),
        attrs=attrs or {},
        demo=extra.pop("demo", False),
    )


def index(*offers: IndexedOffer, max_age: dict[str, timedelta] | None = None) -> OfferIndex:
    return OfferIndex.build(list(offers), NOW, max_age)


def request(**fields: Any) -> PlaceRequest:
    base: dict[str, Any] = {
        "name": "train-llm",
        "image": "nvcr.io/nvidia/pytorch:24.05-py3",
        "command": ["python", "train.py", "--epochs", "3"],
        "env": {"WANDB_MODE": "offline"},
        "gpu": {"count": 8, "models": ["A100-80GB"]},
        "work": {"hours": 10, "reference_gpu": "A100-80GB"},
    }
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return PlaceRequest.model_validate(base)


@pytest.fixture
def make_request() -> Callable[..., PlaceRequest]:
    return request
