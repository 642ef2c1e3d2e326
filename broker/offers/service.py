"""Offer listing over the in-memory index, and the holder that swaps the index in after each ingest."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine

from broker.domain import ConfigError, utcnow
from broker.gcpause import gc_paused
from broker.gpus import GpuCatalog
from broker.offers import repository
from broker.offers.index import IndexedOffer, OfferIndex, _listing_order
from broker.offers.schemas import OfferFilter
from broker.pacing import release

log = logging.getLogger(__name__)
OfferTransform = Callable[[Connection, list[IndexedOffer]], list[IndexedOffer]]
Version = Callable[[Connection], object]
# (connection, version loaded, version now) -> each source's confirmation time, or None: reload the index
Freshen = Callable[[Connection, object, object], Mapping[str, datetime] | None]


class IndexHolder:
    """Holds the current OfferIndex. ``refresh`` rebuilds it off to the side and swaps the reference, so readers
    see either the old index or the new one, never a mix. Replicas call ``refresh_if_changed`` periodically.

    When the polls recorded since the last load changed no offer (they confirmed prices, or failed), the index
    is not reloaded: ``freshen`` tells each source's new confirmation time, and the new index shares the offers
    (and the placement preparation made for them). A full rebuild still happens at least once per UTC day, as
    dated price rules may change with the date."""

    def __init__(
        self,
        engine: Engine,
        max_age: Mapping[str, timedelta] | None = None,
        transform: OfferTransform | None = None,
        version: Version = repository.data_version,
        freshen: Freshen | None = None,
    ) -> None:
        self._engine = engine
        self._max_age = dict(max_age or {})
        self._transform = transform
        self._lock = threading.Lock()
        self._version: object = None
        self._version_of = version
        self._freshen = freshen if freshen is not None else _confirmations_since
        self._loaded_on: date | None = None
        self._loaded: repository.Loaded | None = None  # the last load, whose unchanged offers the next one reuses
        self.on_swap: list[Callable[[OfferIndex], None]] = []
        self.current = OfferIndex.build([], utcnow(), self._max_age)
        self.loaded = False
        self.reloads = 0  # full rebuilds, for tests and the operators' curiosity

    @gc_paused()  # collections doubled the rebuild time of 100k offers
    def refresh(self) -> OfferIndex:
        started, cpu = time.monotonic(), time.thread_time()
        with self._lock, self._engine.connect() as conn:
            version = self._version_of(conn)
            confirmed = repository.source_confirmations(conn)  # before the offers (it says why)
            loaded = repository.load_current(conn, self._loaded)
            offers = loaded.offers
            if self._transform is not None:
                offers = self._transform(conn, offers)
            now = utcnow()
            self._swap(OfferIndex.build(offers, now, self._max_age, confirmed), version)
            previous, self._loaded = self._loaded, loaded
            if previous is not None:  # its 100k entries go in slices (broker.pacing.release)
                parts: list[object] = [*previous.hashes.values(), *previous.by_id.values()]
                del previous
                release(parts)
            self._loaded_on = now.date()
            self.reloads += 1
        log.info(
            "offer index reloaded: %d offers, %d of them unchanged",
            len(offers),
            loaded.kept,
            extra={"seconds": round(time.monotonic() - started, 3), "cpu_seconds": round(time.thread_time() - cpu, 3)},
        )
        return self.current

    def refresh_if_changed(self, gate: Callable[[], AbstractContextManager[object]] = nullcontext) -> bool:
        """Reload, or freshen, when a poll was recorded since; a reload waits inside ``gate`` (a freshen does not)."""
        with self._lock, self._engine.connect() as conn:
            version = self._version_of(conn)
            if version == self._version:
                return False
            now = utcnow()
            if self.loaded and self._loaded_on == now.date():
                confirmed = self._freshen(conn, self._version, version)
                if confirmed is not None:
                    self._swap(self.current.freshened(confirmed, now), version)
                    return True
        with gate():
            self.refresh()
        return True

    def _swap(self, index: OfferIndex, version: object) -> None:
        for listener in self.on_swap:
            listener(index)
        self.current = index
        self._version = version
        self.loaded = True


def _confirmations_since(conn: Connection, old: object, new: object) -> Mapping[str, datetime] | None:
    """For the default version (the latest poll run's id)."""
    if isinstance(old, int) and isinstance(new, int) and new > old:
        return repository.confirmations_since(conn, old, new)
    return None


def select_offers(index: OfferIndex, catalog: GpuCatalog, f: OfferFilter) -> list[IndexedOffer]:
    """Filter and sort by price per GPU-hour (cheapest first)."""
    offers: list[IndexedOffer]
    if f.gpu:
        models = catalog.matching(f.gpu)
        if not models and not f.unknown_gpus:
            known = ", ".join(sorted({m.family for m in catalog.models()}))
            raise ConfigError(f"unknown GPU {f.gpu!r}; known models and families: {known}")
        # an unknown GPU is stored under the source's own name: reachable by that name with unknown_gpus
        ids = {m.id for m in models} | ({f.gpu} if f.unknown_gpus else set())
        offers = [o for gid in ids for o in index.by_gpu.get(gid, ())]
        if len(ids) > 1:
            offers.sort(key=_listing_order)
    else:
        offers = list(index.offers)
    purchase = f.purchase.value if f.purchase else None
    provider = f.provider.lower() if f.provider else None
    out = [
        o
        for o in offers
        if (purchase is None or o.key.purchase == purchase)
        and (provider is None or o.key.provider.lower() == provider)
        and (f.region is None or o.key.region == f.region)
        and (f.min_gpus is None or o.gpu_count >= f.min_gpus)
        and (not f.unknown_gpus or not o.gpu_known)
    ]
    return out
