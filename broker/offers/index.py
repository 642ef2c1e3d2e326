"""The in-memory index of current offers that placement and the offer listing read.

Rebuilt from the store after each ingest and swapped in whole (a single reference assignment), so no
request ever sees half a poll. Floats here, exact decimals in the database: the index is for ranking.

A poll that changed nothing but confirmed its prices does not rebuild it: the new index shares the offers and
carries each source's newer confirmation time in ``confirmed`` (read an offer's through ``confirmed_at``).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from broker.domain import Availability, OfferKey
from broker.pacing import active, pause_point


@dataclass(frozen=True, slots=True)
class IndexedOffer:
    offer_id: int
    key: OfferKey
    source: str
    gpu_model: str  # catalog model id, or the source's raw name when gpu_known is False
    gpu_known: bool
    gpu_count: int
    gpu_memory_gb: float | None
    vcpus: float | None
    memory_gb: float | None
    hourly_usd: float  # effective USD per instance-hour
    list_hourly_usd: float | None  # public list price when hourly_usd is negotiated
    observed_at: datetime  # when this price was first seen
    last_confirmed_at: datetime  # last poll that saw it unchanged
    availability: Availability
    available_quantity: int | None
    attrs: Mapping[str, Any] = field(default_factory=dict)
    demo: bool = False

    @property
    def gpu_hourly_usd(self) -> float:
        return self.hourly_usd / self.gpu_count if self.gpu_count else self.hourly_usd


@dataclass(frozen=True, slots=True)
class OfferIndex:
    offers: Sequence[IndexedOffer]
    built_at: datetime
    # the allowed price age per source (default: twice its poll interval); missing = no limit
    max_age: Mapping[str, timedelta] = field(default_factory=dict)
    by_gpu: Mapping[str, Sequence[IndexedOffer]] = field(default_factory=dict)
    # per source: its latest complete poll, which confirmed every live offer of it (may be newer than the offers')
    confirmed: Mapping[str, datetime] = field(default_factory=dict)

    def confirmed_at(self, o: IndexedOffer) -> datetime:
        """When a poll last saw this offer at this price."""
        at = self.confirmed.get(o.source)
        return at if at is not None and at > o.last_confirmed_at else o.last_confirmed_at

    def freshened(self, confirmed: Mapping[str, datetime], at: datetime) -> OfferIndex:
        """The same offers, confirmed again by polls that changed none of them."""
        return replace(self, built_at=at, confirmed=dict(confirmed))

    @classmethod
    def build(
        cls,
        offers: Sequence[IndexedOffer],
        built_at: datetime,
        max_age: Mapping[str, timedelta] | None = None,
        confirmed: Mapping[str, datetime] | None = None,
    ) -> OfferIndex:
        # kept sorted by price per GPU-hour, so listings filter without sorting
        offers = _sorted_paced(offers) if active() else sorted(offers, key=_listing_order)
        by_gpu: dict[str, list[IndexedOffer]] = {}
        for n, o in enumerate(offers):
            if not n & 255:
                pause_point()
            by_gpu.setdefault(o.gpu_model, []).append(o)
        return cls(
            offers=tuple(offers),
            built_at=built_at,
            max_age=dict(max_age or {}),
            by_gpu={k: tuple(v) for k, v in by_gpu.items()},
            confirmed=dict(confirmed or {}),
        )


_SORT_CHUNK = 4096


def _sorted_paced(offers: Sequence[IndexedOffer]) -> list[IndexedOffer]:
    """The same order as ``sorted(offers, key=_listing_order)``, made of short steps: one sort of 100k offers
    holds the GIL for about 50 ms, chunks of 4k for about 1 ms each, and the merge is interruptible. Both are
    stable (the merge breaks ties by chunk, and the chunks are in the input's order)."""
    chunks: list[list[IndexedOffer]] = []
    for start in range(0, len(offers), _SORT_CHUNK):
        chunks.append(sorted(offers[start : start + _SORT_CHUNK], key=_listing_order))
        pause_point()
    out: list[IndexedOffer] = []
    for n, o in enumerate(heapq.merge(*chunks, key=_listing_order)):
        out.append(o)
        if not n & 1023:
            pause_point()
    return out


def _listing_order(o: IndexedOffer) -> tuple[float, float, str, str, str]:
    return (o.gpu_hourly_usd, o.hourly_usd, o.key.provider, o.key.region, o.key.instance_type)
