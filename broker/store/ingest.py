"""Ingest: the only writer of prices. Applies one source snapshot to the store.

Guarantees:
- atomic: the whole snapshot is applied in one transaction, or nothing is (the previous state stays visible);
- change-only and idempotent: a price row opens only when an offer's price changes, so applying the same
  snapshot twice writes no price rows;
- guarded: a complete snapshot that would withdraw more than ``max_withdraw_share`` of the source's live
  offers is recorded ``suspect`` and withdraws nothing (a truncated listing must not wipe a cloud);
- per-row validation: bad observations are rejected one by one, counted by reason on the poll run.

Cost is proportional to the snapshot for reading and to the *changes* for writing: an unchanged price costs no
write at all (a complete poll confirms every live offer of its source through ``source_state``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import Connection, Engine, insert, select, update

from broker.domain import Availability, OfferKey, Outcome, PriceObservation, Purchase, Snapshot, utcnow
from broker.gcpause import gc_paused
from broker.gpus import GpuCatalog
from broker.store.bulk import Dialect
from broker.store.models import PollRun, SourceState, table

log = logging.getLogger(__name__)

RUNS = table(PollRun)
STATE = table(SourceState)

PURCHASES = frozenset(p.value for p in Purchase)
AVAILABILITIES = frozenset(a.value for a in Availability)
ABSURD_FACTOR = Decimal(10)  # a price jumping more than 10x (or to a tenth) in one poll is a data fault
PRICE_QUANTUM = Decimal("1e-8")  # the database keeps 8 decimals: compare what will be stored
OFFER_COLUMNS = (
    "id", "source", "provider", "region", "zone", "instance_type", "purchase", "term", "payment", "plan", "key_hash",
    "gpu_model", "gpu_known", "gpu_raw_name", "gpu_count", "gpu_memory_gb", "vcpus", "memory_gb", "attrs", "demo",
    "meta_hash", "first_seen_at",
)  # fmt: skip
PRICE_COLUMNS = ("offer_id", "hourly_usd", "list_hourly_usd", "valid_from", "last_confirmed_at", "poll_run_id")
AVAIL_COLUMNS = ("offer_id", "state", "quantity", "valid_from", "last_confirmed_at")
# COPY types per column (json travels as text: its binary form is the text itself)
OFFER_PG_TYPES = ("int8", *["text"] * 9, "bytea", "text", "bool", "text", "int4", "float8", "float8", "float8", "text",
                  "bool", "text", "timestamptz")  # fmt: skip
PRICE_PG_TYPES = ("int8", "numeric", "numeric", "timestamptz", "timestamptz", "int8")
AVAIL_PG_TYPES = ("int8", "text", "int4", "timestamptz", "timestamptz")

Key = tuple[str, str, str, str, str, str, str, str]
KEY_SEPARATORS = 7  # NULs in a joined Key: more means a part held one
_ENCODE = msgspec.json.Encoder(order="sorted").encode  # stable bytes for the descriptive columns' digest
_digest = hashlib.blake2b


@dataclass(slots=True)
class IngestResult:
    source: str
    run_id: int
    outcome: Outcome
    offers_seen: int = 0
    offers_new: int = 0
    prices_changed: int = 0
    offers_withdrawn: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "outcome": self.outcome.value,
            "offers_seen": self.offers_seen,
            "offers_new": self.offers_new,
            "prices_changed": self.prices_changed,
            "offers_withdrawn": self.offers_withdrawn,
            "rejected": dict(self.rejected),
            "warnings": self.warnings,
            "error": self.error,
        }


class _Current(NamedTuple):
    """An offer of this source as stored, with its current price and availability rows (raw cursor values)."""

    key_hash: bytes
    offer_id: int
    live: Any  # not withdrawn (a bool on PostgreSQL, 0/1 on SQLite)
    meta_hash: str
    price_id: int | None
    price: Any
    list_price: Any
    avail_id: int | None
    avail_state: str | None
    avail_quantity: int | None


_LIVE = _Current._fields.index("live")
_live = itemgetter(_LIVE)
_KEY = attrgetter("provider", "region", "zone", "instance_type", "purchase", "term", "payment", "plan")


def offer_key_hash(key: OfferKey) -> bytes:
    """The digest that keys an offer within its source (``offers.key_hash``, unique with ``source``). NUL joins
    the parts: no text column can hold one (ingest rejects such keys), so distinct keys never join alike."""
    return _digest("\x00".join(_KEY(key)).encode(), digest_size=16).digest()


def _reject_reason(obs: PriceObservation) -> str | None:
    k = obs.key
    if not k.instance_type:
        return "missing instance type"
    if not k.provider or not k.region:
        return "missing provider or region"
    if k.purchase not in PURCHASES:
        return "unknown purchase option"
    if (obs.currency or "").upper() != "USD":
        return "currency is not USD"
    price = obs.hourly_usd
    if not isinstance(price, Decimal) or not price.is_finite():
        return "price is not a number"
    if price <= 0:
        return "price <= 0"
    if obs.list_hourly_usd is not None and obs.list_hourly_usd <= 0:
        return "list price <= 0"
    if obs.gpu_count <= 0:
        return "no GPUs"
    if obs.availability not in AVAILABILITIES:
        return "unknown availability state"
    return None


class GpuResolver:
    """Resolves a source's GPU name to a catalog model, remembering answers (a snapshot repeats names a lot)."""

    def __init__(self, catalog: GpuCatalog) -> None:
        self._catalog = catalog
        self._cache: dict[tuple[str, str, float | None, str], tuple[str, bool]] = {}

    def __call__(self, naming: str, raw: str, memory_gb: float | None, instance_type: str = "") -> tuple[str, bool]:
        key = (naming, raw, memory_gb, instance_type)
        hit = self._cache.get(key)
        if hit is None:
            # the instance type may settle SXM vs PCIe where the GPU name alone does not ("1H100.80S.30V")
            model = self._catalog.resolve(naming, raw, memory_gb, hint=instance_type or None)
            hit = (model.id, True) if model is not None else (raw.strip() or "unknown", False)
            self._cache[key] = hit
        return hit


def _absurd(stored: Decimal, new: Decimal) -> bool:
    return new > stored * ABSURD_FACTOR or new * ABSURD_FACTOR < stored


def _same_money(stored: Any, new: Decimal | None) -> bool:
    if stored is None or new is None:
        return stored is None and new is None
    if isinstance(stored, Decimal):
        return stored == new
    return float(stored) == float(new)  # SQLite hands back REAL/INTEGER


def _load_current(conn: Connection, source: str) -> dict[bytes, tuple[Any, ...]]:
    """Raw rows in ``_Current``'s column order, keyed by key hash (a NamedTuple per row costs too much at 100k:
    rows become ``_Current`` only where something changed). No timestamps: decoding two per row cost more than
    the rest of the row, and a closing row's stamps are settled by the UPDATE that closes it."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(
        "SELECT o.key_hash, o.id, o.withdrawn_at IS NULL, o.meta_hash, p.id, p.hourly_usd, p.list_hourly_usd, "
        "a.id, a.state, a.quantity "
        "FROM offers o "
        "LEFT JOIN price_intervals p ON p.offer_id = o.id AND p.valid_to IS NULL "
        "LEFT JOIN availability_intervals a ON a.offer_id = o.id AND a.valid_to IS NULL "
        f"WHERE o.source = {'%s' if conn.dialect.name == 'postgresql' else '?'}",
        (source,),
    )
    rows = cursor.fetchall()
    cursor.close()
    return {r[0]: r for r in rows}


def _load_apart(engine: Engine, source: str) -> dict[bytes, tuple[Any, ...]]:
    with engine.connect() as conn:
        return _load_current(conn, source)


_LOADER = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ingest-load")  # idle threads cost nothing


def record_failure(
    engine: Engine, source: str, started_at: datetime, error: str, *, demo: bool = False, warnings: Iterable[str] = ()
) -> IngestResult:
    """A poll that produced no usable snapshot: recorded, nothing else touched."""
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(RUNS).returning(RUNS.c.id),
            {
                "source": source, "started_at": started_at, "finished_at": utcnow(), "outcome": Outcome.FAILED.value,
                "complete": False, "demo": demo, "offers_seen": 0, "offers_new": 0, "prices_changed": 0,
                "offers_withdrawn": 0, "offers_changed": 0, "rejected": {}, "warnings": list(warnings),
                "error": error[:2000],
            },
        ).scalar_one()  # fmt: skip
    return IngestResult(source=source, run_id=run_id, outcome=Outcome.FAILED, error=error, warnings=list(warnings))


class _Clock:
    """Time per phase of one ingest, logged at DEBUG level (``bench/ingest.py --phases`` shows it)."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self._last
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{phase} {seconds * 1000:.0f} ms" for phase, seconds in self.phases.items())


class _Writer:
    """Collects the changes one snapshot makes, then writes them in bulk."""

    def __init__(
        self, db: Dialect, snapshot: Snapshot, resolve: GpuResolver, run_id: int, last_complete: datetime | None
    ) -> None:
        t = snapshot.taken_at
        self.db = db
        self.snapshot = snapshot
        self.resolve = resolve
        self.t_db = db.dt(t)
        self.run_id = run_id
        # a closing row was last seen at its own stamp or at the source's last complete poll, whichever is later,
        # but never after t (a complete poll after t cannot vouch for it)
        floor = db.dt(last_complete) if last_complete is not None and last_complete <= t else None
        if floor is None:
            self.seen_sql = "CASE WHEN last_confirmed_at > ? THEN ? ELSE last_confirmed_at END"
            self.seen_args: tuple[Any, ...] = (self.t_db, self.t_db)
        else:
            self.seen_sql = "CASE WHEN last_confirmed_at > ? OR last_confirmed_at < ? THEN ? ELSE last_confirmed_at END"
            self.seen_args = (self.t_db, floor, floor)
        # new offers: (key hash, key, observation, availability); their rows are made at flush, with their ids
        self.new_offers: list[tuple[bytes, Key, PriceObservation, tuple[str, int | None]]] = []
        self.new_prices: list[tuple[Any, ...]] = []
        self.new_avail: list[tuple[Any, ...]] = []
        self.close_prices: list[int] = []
        self.close_avail: list[int] = []
        self.reopen: list[tuple[Any, ...]] = []
        self.meta: list[tuple[Any, ...]] = []
        self.confirm: list[tuple[Any, ...]] = []
        self.withdraw: list[tuple[Any, ...]] = []

    def index_changes(self) -> int:
        """An upper bound on the offers whose row in the offer index this write changes (0: none)."""
        rows: tuple[list[Any], ...] = (
            *(self.new_offers, self.new_prices, self.new_avail, self.close_prices, self.close_avail),
            *(self.reopen, self.meta, self.confirm, self.withdraw),
        )
        return sum(len(r) for r in rows)

    def open_price(self, offer_id: int, obs: PriceObservation) -> None:
        db = self.db
        self.new_prices.append((offer_id, db.money(obs.hourly_usd), db.money(obs.list_hourly_usd), self.t_db,
                                self.t_db, self.run_id))  # fmt: skip

    def open_avail(self, offer_id: int, avail: tuple[str, int | None]) -> None:
        self.new_avail.append((offer_id, avail[0], avail[1], self.t_db, self.t_db))

    def close(self, cur: _Current, *, price: bool, avail: bool) -> None:
        if price and cur.price_id is not None:
            self.close_prices.append(cur.price_id)
        if avail and cur.avail_id is not None:
            self.close_avail.append(cur.avail_id)

    def flush(self, clock: _Clock) -> None:
        db, t = self.db, self.t_db
        # In key-hash order, ids ascending: the rows of a first snapshot append to every index, the unique one on
        # (source, key_hash) included, instead of landing all over them.
        self.new_offers.sort(key=_first)
        ids = db.next_ids("offers", len(self.new_offers))
        clock.lap("new ids")
        db.insert("offers", OFFER_COLUMNS, _Rows(len(ids), self._offer_rows(ids)), OFFER_PG_TYPES)
        clock.lap("insert offers")
        db.execute_many("UPDATE offers SET withdrawn_at = NULL WHERE id = ?", self.reopen)
        db.execute_many(
            "UPDATE offers SET gpu_model = ?, gpu_known = ?, gpu_raw_name = ?, gpu_count = ?, gpu_memory_gb = ?, "
            "vcpus = ?, memory_gb = ?, attrs = ?, demo = ?, meta_hash = ? WHERE id = ?",
            self.meta,
        )
        for name, closing in (("price_intervals", self.close_prices), ("availability_intervals", self.close_avail)):
            db.execute_many(
                f"UPDATE {name} SET valid_to = ?, last_confirmed_at = {self.seen_sql} WHERE id = ?",
                [(t, *self.seen_args, row_id) for row_id in closing],
            )
        clock.lap("update offers, close rows")
        db.insert("price_intervals", PRICE_COLUMNS, self.new_prices, PRICE_PG_TYPES)
        clock.lap("insert prices")
        db.insert("availability_intervals", AVAIL_COLUMNS, self.new_avail, AVAIL_PG_TYPES)
        clock.lap("insert availability")
        db.execute_many("UPDATE price_intervals SET last_confirmed_at = ? WHERE id = ?", self.confirm)
        db.execute_many("UPDATE offers SET withdrawn_at = ? WHERE id = ?", self.withdraw)
        clock.lap("confirm, withdraw")

    def _offer_rows(self, ids: list[int]) -> Iterator[tuple[Any, ...]]:
        """The new offers' rows, made as COPY sends them (the server inserts the first ones while these are made),
        queueing each one's first price and availability rows."""
        snap, db, t = self.snapshot, self.db, self.t_db
        for offer_id, (key_hash, key, obs, avail) in zip(ids, self.new_offers, strict=True):
            gpu_model, gpu_known = self.resolve(snap.naming, obs.gpu_name, obs.gpu_memory_gb, key[3])
            digest = _meta_hash(obs, gpu_model, gpu_known, snap.demo)
            yield (offer_id, snap.source, *key, key_hash, *_meta(obs, gpu_model, gpu_known, snap.demo, digest, db), t)
            self.open_price(offer_id, obs)
            self.open_avail(offer_id, avail)


class _Rows:
    """Rows of a known count, made while they are written."""

    def __init__(self, count: int, rows: Iterator[tuple[Any, ...]]) -> None:
        self.count = count
        self.rows = rows

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return self.rows


def _first(row: tuple[Any, ...]) -> Any:
    return row[0]


def _meta_hash(obs: PriceObservation, gpu_model: str, gpu_known: bool, demo: bool) -> str:
    described = (gpu_model, gpu_known, obs.gpu_name, obs.gpu_count, obs.gpu_memory_gb, obs.vcpus, obs.memory_gb,
                 obs.attrs, demo)  # fmt: skip
    return hashlib.blake2b(_ENCODE(described), digest_size=12).hexdigest()


def _meta(
    obs: PriceObservation, gpu_model: str, gpu_known: bool, demo: bool, digest: str, db: Dialect
) -> tuple[Any, ...]:
    return (gpu_model, db.boolean(gpu_known), obs.gpu_name, obs.gpu_count, obs.gpu_memory_gb, obs.vcpus,
            obs.memory_gb, db.json(obs.attrs), db.boolean(demo), digest)  # fmt: skip


@gc_paused()
def apply_snapshot(
    engine: Engine,
    snapshot: Snapshot,
    catalog: GpuCatalog | GpuResolver,
    *,
    max_withdraw_share: float = 0.30,
    started_at: datetime | None = None,
) -> IngestResult:
    resolve = catalog if isinstance(catalog, GpuResolver) else GpuResolver(catalog)
    started_at = started_at or utcnow()
    t = snapshot.taken_at
    if t.tzinfo is None:
        raise ValueError("snapshot.taken_at must be timezone-aware UTC")
    clock = _Clock()
    # PostgreSQL reads the stored state on a second connection while Python validates the snapshot
    loading = _LOADER.submit(_load_apart, engine, snapshot.source) if engine.dialect.name == "postgresql" else None
    rejected: Counter[str] = Counter(snapshot.rejected)
    listed: set[bytes] = set()  # every key the source listed, valid or not: a rejected row is not a withdrawal

    valid: dict[bytes, tuple[Key, PriceObservation]] = {}
    for obs in snapshot.observations:
        key: Key = _KEY(obs.key)
        joined = "\x00".join(key)
        key_hash = _digest(joined.encode(), digest_size=16).digest()  # offer_key_hash, inlined: 100k calls
        listed.add(key_hash)
        reason = _reject_reason(obs)
        if reason is None:
            if joined.count("\x00") != KEY_SEPARATORS:
                reason = "NUL character in the offer key"
            elif key_hash in valid:
                reason = "duplicate offer in snapshot"
        if reason is not None:
            rejected[reason] += 1
            continue
        obs.hourly_usd = obs.hourly_usd.quantize(PRICE_QUANTUM)
        if obs.list_hourly_usd is not None:
            obs.list_hourly_usd = obs.list_hourly_usd.quantize(PRICE_QUANTUM)
        valid[key_hash] = (key, obs)
    clock.lap("validate")

    with engine.begin() as conn:
        db = Dialect(conn)
        # this first write also takes SQLite's write lock for the whole transaction
        run_id: int = conn.execute(
            insert(RUNS).returning(RUNS.c.id),
            {
                "source": snapshot.source, "started_at": started_at, "outcome": "running",
                "complete": snapshot.complete, "demo": snapshot.demo, "snapshot_taken_at": t, "rejected": {},
                "warnings": [], "offers_seen": 0, "offers_new": 0, "prices_changed": 0, "offers_withdrawn": 0,
            },
        ).scalar_one()  # fmt: skip
        state = conn.execute(select(STATE.c.last_complete_at).where(STATE.c.source == snapshot.source)).first()
        w = _Writer(db, snapshot, resolve, run_id, state[0] if state else None)
        clock.lap("begin")
        current = loading.result() if loading is not None else _load_current(conn, snapshot.source)
        clock.lap("load current")
        changed = 0

        for key_hash, (key, obs) in valid.items():
            avail = (str(obs.availability), obs.available_quantity)
            cur = current.get(key_hash)
            if cur is None:
                w.new_offers.append((key_hash, key, obs, avail))
                continue
            gpu_model, gpu_known = resolve(snapshot.naming, obs.gpu_name, obs.gpu_memory_gb, key[3])
            digest = _meta_hash(obs, gpu_model, gpu_known, snapshot.demo)
            (_, offer_id, live, meta_hash, price_id, price, list_price, avail_id, state, quantity) = cur
            new_price = obs.hourly_usd
            # SQLite hands back REAL/INTEGER, PostgreSQL a Decimal
            same = (
                (price == new_price)
                if isinstance(price, Decimal)
                else (price is not None and price == float(new_price))
            )
            price_changed = not (same and _same_money(list_price, obs.list_hourly_usd))
            if price_changed and live and price is not None and _absurd(Decimal(str(price)), new_price):
                rejected["price more than 10x away from the stored price"] += 1
                continue
            if not live:
                w.reopen.append((offer_id,))
            if digest != meta_hash:
                w.meta.append((*_meta(obs, gpu_model, gpu_known, snapshot.demo, digest, db), offer_id))
            if not live or price_id is None or price_changed:
                changed += 1
                if live:
                    w.close(_Current._make(cur), price=True, avail=False)
                w.open_price(offer_id, obs)
            elif not snapshot.complete:
                w.confirm.append((w.t_db, price_id))
            if not live or avail_id is None or (state, quantity) != avail:
                if live:
                    w.close(_Current._make(cur), price=False, avail=True)
                w.open_avail(offer_id, avail)

        outcome = Outcome.OK
        warnings = list(snapshot.warnings)
        gone: list[_Current] = []
        if snapshot.complete:
            gone = [_Current._make(c) for k in current.keys() - listed if (c := current[k])[_LIVE]]
            live_count = sum(map(_live, current.values()))
            if gone and len(gone) > max_withdraw_share * live_count:
                outcome = Outcome.SUSPECT
                warnings.append(
                    f"snapshot would withdraw {len(gone)} of {live_count} live offers (more than "
                    f"{max_withdraw_share:.0%}): nothing withdrawn"
                )
                gone = []
        _withdraw(w, gone)
        clock.lap("compare")
        offers_changed = w.index_changes()
        w.flush(clock)

        if snapshot.complete and outcome is Outcome.OK:
            _set_last_complete(conn, snapshot.source, t, run_id)
        if outcome is Outcome.OK and (not snapshot.complete or rejected):
            outcome = Outcome.PARTIAL
        result = IngestResult(
            source=snapshot.source, run_id=run_id, outcome=outcome, offers_seen=len(snapshot.observations),
            offers_new=len(w.new_offers), prices_changed=changed + len(w.new_offers), offers_withdrawn=len(gone),
            rejected=rejected, warnings=warnings,
        )  # fmt: skip
        conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(
                finished_at=utcnow(),
                outcome=outcome.value,
                offers_seen=result.offers_seen,
                offers_new=result.offers_new,
                prices_changed=result.prices_changed,
                offers_withdrawn=result.offers_withdrawn,
                offers_changed=offers_changed,
                rejected=dict(rejected),
                warnings=warnings,
            )
        )
        clock.lap("finish run")
    clock.lap("commit")
    log.debug("ingest %s: %s", snapshot.source, clock)
    return result


def _withdraw(w: _Writer, gone: list[_Current]) -> None:
    for cur in gone:
        w.close(cur, price=True, avail=True)
        w.withdraw.append((w.t_db, cur.offer_id))


def _set_last_complete(conn: Connection, source: str, t: datetime, run_id: int) -> None:
    updated = conn.execute(
        update(STATE).where(STATE.c.source == source).values(last_complete_at=t, last_run_id=run_id)
    ).rowcount
    if not updated:
        conn.execute(insert(STATE), {"source": source, "last_complete_at": t, "last_run_id": run_id})
