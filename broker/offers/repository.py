"""Reads of current offers from the store (the offer index is built from these)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Connection, CursorResult, Select, Text, and_, cast, func, select

from broker.domain import Availability, OfferKey
from broker.offers.index import IndexedOffer
from broker.pacing import pause_point
from broker.store.bulk import Dialect
from broker.store.models import AvailabilityInterval, Offer, PollRun, PriceInterval, SourceState, table

OC, P, A, S = table(Offer).c, table(PriceInterval).c, table(AvailabilityInterval).c, table(SourceState).c


def _current_offers() -> Select[Any]:
    return (
        select(
            OC.id,
            OC.provider,
            OC.region,
            OC.zone,
            OC.instance_type,
            OC.purchase,
            OC.term,
            OC.payment,
            OC.plan,
            OC.source,
            OC.gpu_model,
            OC.gpu_known,
            OC.gpu_count,
            OC.gpu_memory_gb,
            OC.vcpus,
            OC.memory_gb,
            cast(OC.attrs, Text),  # as text from every driver: rows must hash (psycopg would hand over a dict)
            OC.demo,
            P.hourly_usd,
            P.list_hourly_usd,
            P.valid_from,
            P.last_confirmed_at,
            A.state,
            A.quantity,
        )
        .select_from(
            table(Offer)
            .join(table(PriceInterval), and_(P.offer_id == OC.id, P.valid_to.is_(None)))
            .outerjoin(table(AvailabilityInterval), and_(A.offer_id == OC.id, A.valid_to.is_(None)))
        )
        .where(OC.withdrawn_at.is_(None))
    )


_AVAILABILITY = {a.value: a for a in Availability}


@dataclass(frozen=True, slots=True)
class Loaded:
    """Live offers as loaded, with what the next load needs to reuse an offer whose row did not change: per offer
    id, the hash of its row and the offer made of it. A hash rather than the row: the rows would take about 600
    bytes an offer, and two different rows of one offer share a 64-bit hash with odds of about 2^-64."""

    offers: list[IndexedOffer]
    hashes: dict[int, int]
    by_id: dict[int, IndexedOffer]
    kept: int = 0  # offers reused from the previous load


def load_current(conn: Connection, previous: Loaded | None = None) -> Loaded:
    """Every live offer with its current price and availability, confirmed as of its own price row (each source's
    latest complete poll confirms them further: ``source_confirmations``).

    Read as raw driver rows and converted here: the index is rebuilt after every poll that changed offers, on
    every replica, and the ORM's per-column result processing was most of the rebuild's time at 100k offers. An
    offer whose row is as ``previous`` read it is that same offer object: most of a poll's offers did not
    change, and reusing them spares making them again here and preparing them again for placement."""
    sql = str(_current_offers().compile(dialect=conn.dialect))
    db = Dialect(conn)
    seen: dict[Any, datetime] = {}  # the offers of one poll share their timestamps: parse each once

    def read_dt(raw: Any) -> datetime:
        value = seen.get(raw)
        if value is None:
            parsed = db.read_dt(raw)
            assert parsed is not None  # NOT NULL columns
            value = seen[raw] = parsed
        return value

    decode = msgspec.json.decode
    unknown = Availability.UNKNOWN
    hashed_before = previous.hashes if previous is not None else {}
    before = previous.by_id if previous is not None else {}
    hashes: dict[int, int] = {}
    by_id: dict[int, IndexedOffer] = {}
    out: list[IndexedOffer] = []
    append = out.append
    kept = 0
    for row in _paced_rows(conn.exec_driver_sql(sql)):
        digest = hash(row)
        if hashed_before.get(row[0]) == digest:
            same = by_id[row[0]] = before[row[0]]
            hashes[row[0]] = digest
            append(same)
            kept += 1
            continue
        (
            offer_id, provider, region, zone, instance_type, purchase, term, payment, plan, source, gpu_model,
            gpu_known, gpu_count, gpu_memory_gb, vcpus, memory_gb, attrs, demo, hourly, list_hourly, valid_from,
            last_confirmed, state, quantity,
        ) = row  # fmt: skip
        if attrs is not None:  # selected as text (see _current_offers)
            attrs = decode(attrs)
        offer = IndexedOffer(
            offer_id,
            OfferKey(provider, region, instance_type, purchase, zone, term, payment, plan),
            source,
            gpu_model,
            bool(gpu_known),
            gpu_count,
            gpu_memory_gb,
            vcpus,
            memory_gb,
            float(hourly),
            float(list_hourly) if list_hourly is not None else None,
            read_dt(valid_from),
            read_dt(last_confirmed),
            _AVAILABILITY[state] if state else unknown,
            quantity,
            attrs or {},
            bool(demo),
        )
        hashes[offer_id] = digest
        by_id[offer_id] = offer
        append(offer)
    return Loaded(out, hashes, by_id, kept)


def source_confirmations(conn: Connection, upto_run: int | None = None) -> dict[str, datetime]:
    """Each source's latest complete poll, which confirmed every live offer of it (with ``upto_run``: only the
    sources whose latest poll is that run or older).

    Read it before the offers: a poll that commits in between then makes offers newer than the confirmation
    (they carry their own), never lends its confirmation to prices it did not see."""
    query = select(S.source, S.last_complete_at).where(S.last_complete_at.is_not(None))
    if upto_run is not None:
        query = query.where(S.last_run_id <= upto_run)
    return {source: complete for source, complete in conn.execute(query) if complete is not None}


def _paced_rows(result: CursorResult[Any]) -> Iterator[Sequence[Any]]:
    # The driver's own rows (plain tuples): they compare in C, where SQLAlchemy's rows compare in Python. In
    # slices, with a pause point between them: a refresher thread shares its process with the requests.
    cursor = result.cursor
    try:
        while rows := cursor.fetchmany(512):
            yield from rows
            pause_point()
    finally:
        result.close()


def confirmations_since(conn: Connection, after_run: int, upto_run: int) -> dict[str, datetime] | None:
    """When no poll recorded after ``after_run`` (up to ``upto_run``) changed an offer of the index, only
    confirmed prices or failed: each source's latest complete poll, which confirms every live offer of it. None
    when any of them changed offers, or predates the count of changes (the index must be reloaded)."""
    runs = table(PollRun).c
    changed = conn.execute(
        select(func.coalesce(func.sum(func.coalesce(runs.offers_changed, 1)), 0)).where(
            runs.id > after_run, runs.id <= upto_run
        )
    ).scalar_one()
    if changed:
        return None
    # a source whose latest complete poll came after ``upto_run`` (committed meanwhile) is left to the next refresh:
    # that poll's changes were not checked above
    return source_confirmations(conn, upto_run)


def data_version(conn: Connection) -> int:
    """Changes whenever a poll is recorded: replicas compare it to know when to rebuild their index."""
    return int(conn.execute(select(func.coalesce(func.max(table(PollRun).c.id), 0))).scalar_one())
