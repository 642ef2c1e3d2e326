"""The offer object: its field names are part of the API (CLI ``--json`` and ``GET /v1/offers`` emit the same)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from broker.domain import Purchase
from broker.offers.index import IndexedOffer, OfferIndex


def _money(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def offer_out(o: IndexedOffer, index: OfferIndex) -> dict[str, Any]:
    k = o.key
    return {
        "provider": k.provider,
        "region": k.region,
        "zone": k.zone or None,
        "instance_type": k.instance_type,
        "purchase": k.purchase,
        "term": k.term or None,
        "payment": k.payment or None,
        "plan": k.plan or None,
        "gpu_model": o.gpu_model,
        "gpu_known": o.gpu_known,
        "gpu_count": o.gpu_count,
        "gpu_memory_gb": o.gpu_memory_gb,
        "vcpus": o.vcpus,
        "memory_gb": o.memory_gb,
        "hourly_usd": _money(o.hourly_usd),
        "gpu_hourly_usd": _money(o.gpu_hourly_usd),
        "list_hourly_usd": _money(o.list_hourly_usd),
        "observed_at": o.observed_at.isoformat(),
        "last_confirmed_at": index.confirmed_at(o).isoformat(),
        "availability": o.availability.value,
        "available_quantity": o.available_quantity,
        "source": o.source,
        "demo": o.demo,
    }


class OfferFilter(BaseModel):
    """Filters shared by ``broker offers`` and ``GET /v1/offers``."""

    model_config = ConfigDict(extra="forbid")

    gpu: str | None = Field(default=None, description="GPU model id or family (e.g. H100, A100-80GB)")
    min_gpus: int | None = Field(default=None, ge=1, description="at least this many GPUs per instance")
    purchase: Purchase | None = None
    provider: str | None = None
    region: str | None = None
    unknown_gpus: bool = Field(default=False, description="only offers whose GPU name the catalog does not know")
