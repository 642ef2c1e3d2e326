"""Ingest: the only writer of prices. Applies one source snapshot to the store.

Guarantees:
- atomic: the whole snapshot is applied in one transaction, or nothing is (the previous state stays visible);
- change-only and idempotent: a price row opens only when an offer's price changes, so applying the same
  snapshot twice writes no price rows;
- guarded: a complete snapshot that would withdraw more than ``max_withdraw_share`` of the source's live
  offers is recorded ``suspect`` and withdraws nothing (a truncated listing must not wipe a cloud);
- per-row validation: bad observations are rejected one by one, counted by reason on the poll run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, insert, select, update

from broker.domain import Availability, Outcome, PriceObservation, Purchase, Snapshot, utcnow
from broker.gpus import GpuCatalog
from broker.store.models import AvailabilityInterval, Offer, PollRun, PriceInterval, SourceState, table

OFFERS = table(Offer)
PRICES = table(PriceInterval)
AVAIL = table(AvailabilityInterval)
RUNS = table(PollRun)
STATE = table(SourceState)

PURCHASES = frozenset(p.value for p in Purchase)
AVAILABILITIES = frozenset(a.value for a in Availability)
ABSURD_FACTOR = Decimal(10)  # a price jumping more than 10x (or to a tenth) in one poll is a data fault
CHUNK = 5000


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


@dataclass(slots=True)
class _Current:
    """An offer of this source as stored, with its current price and availability rows."""

    offer_id: int
    withdrawn: bool
    meta: tuple[Any, ...]
    price_id: int | None
    price_confirmed: datetime | None
    price: Decimal | None
    list_price: Decimal | None
    avail_id: int | None
    avail_confirmed: datetime | None
    avail: tuple[str, int | None] | None


def _chunks(items: list[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


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


def _key_tuple(
    provider: str, region: str, zone: str, instance_type: str, purchase: str, term: str, payment: str, plan: str
) -> tuple[str, ...]:
    return (provider, region, zone, instance_type, purchase, term, payment, plan)


class GpuResolver:
    """Resolves a source's GPU name to a catalog model, remembering answers (a snapshot repeats names a lot)."""

    def __init__(self, catalog: GpuCatalog) -> None:
        self._catalog = catalog
        self._cache: dict[tuple[str, str, float | None], tuple[str, bool]] = {}

    def __call__(self, naming: str, raw: str, memory_gb: float | None) -> tuple[str, bool]:
        key = (naming, raw, memory_gb)
        hit = self._cache.get(key)
        if hit is None:
            model = self._catalog.resolve(naming, raw, memory_gb)
            hit = (model.id, True) if model is not None else (raw.strip() or "unknown", False)
            self._cache[key] = hit
        return hit


def _load_current(conn: Connection, source: str) -> dict[tuple[str, ...], _Current]:
    o, p, a = OFFERS.c, PRICES.c, AVAIL.c
    stmt = (
        select(
            o.id,
            o.provider,
            o.region,
            o.zone,
            o.instance_type,
            o.purchase,
            o.term,
            o.payment,
            o.plan,
            o.withdrawn_at,
            o.gpu_model,
            o.gpu_known,
            o.gpu_raw_name,
            o.gpu_count,
            o.gpu_memory_gb,
            o.vcpus,
            o.memory_gb,
            o.attrs,
            o.demo,
            p.id.label("price_id"),
            p.hourly_usd,
            p.list_hourly_usd,
            p.last_confirmed_at.label("price_confirmed"),
            a.id.label("avail_id"),
            a.state,
            a.quantity,
            a.last_confirmed_at.label("avail_confirmed"),
        )
        .select_from(
            OFFERS.outerjoin(PRICES, and_(p.offer_id == o.id, p.valid_to.is_(None))).outerjoin(
                AVAIL, and_(a.offer_id == o.id, a.valid_to.is_(None))
            )
        )
        .where(o.source == source)
    )
    current: dict[tuple[str, ...], _Current] = {}
    for r in conn.execute(stmt):
        key = _key_tuple(r.provider, r.region, r.zone, r.instance_type, r.purchase, r.term, r.payment, r.plan)
        current[key] = _Current(
            offer_id=r.id,
            withdrawn=r.withdrawn_at is not None,
            meta=(
                r.gpu_model,
                r.gpu_known,
                r.gpu_raw_name,
                r.gpu_count,
                r.gpu_memory_gb,
                r.vcpus,
                r.memory_gb,
                r.attrs,
                r.demo,
            ),
            price_id=r.price_id,
            price_confirmed=r.price_confirmed,
            price=r.hourly_usd,
            list_price=r.list_hourly_usd,
            avail_id=r.avail_id,
            avail_confirmed=r.avail_confirmed,
            avail=(r.state, r.quantity) if r.avail_id is not None else None,
        )
    return current


def _close(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Close current interval rows: rows hold ``_id``, ``_to`` and ``_confirmed``."""
    if not rows:
        return
    stmt = (
        update(table)
        .where(table.c.id == bindparam("_id"))
        .values(valid_to=bindparam("_to"), last_confirmed_at=bindparam("_confirmed"))
    )
    for chunk in _chunks(rows):
        conn.execute(stmt, chunk)


def _insert(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    for chunk in _chunks(rows):
        conn.execute(insert(table), chunk)


def record_failure(
    engine: Engine, source: str, started_at: datetime, error: str, *, demo: bool = False, warnings: Iterable[str] = ()
) -> IngestResult:
    """A poll that produced no usable snapshot: recorded, nothing else touched."""
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(RUNS).returning(RUNS.c.id),
            {
                "source": source,
                "started_at": started_at,
                "finished_at": utcnow(),
                "outcome": Outcome.FAILED.value,
                "complete": False,
                "demo": demo,
                "offers_seen": 0,
                "offers_new": 0,
                "prices_changed": 0,
                "offers_withdrawn": 0,
                "rejected": {},
                "warnings": list(warnings),
                "error": error[:2000],
            },
        ).scalar_one()
    return IngestResult(source=source, run_id=run_id, outcome=Outcome.FAILED, error=error, warnings=list(warnings))


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
    rejected: Counter[str] = Counter(snapshot.rejected)

    # Validate and de-duplicate before touching the database.
    valid: dict[tuple[str, ...], PriceObservation] = {}
    for obs in snapshot.observations:
        reason = _reject_reason(obs)
        k = obs.key
        key = _key_tuple(k.provider, k.region, k.zone, k.instance_type, k.purchase, k.term, k.payment, k.plan)
        if reason is None and key in valid:
            reason = "duplicate offer in snapshot"
        if reason is not None:
            rejected[reason] += 1
            continue
        valid[key] = obs

    with engine.begin() as conn:
        run_id: int = conn.execute(
            insert(RUNS).returning(RUNS.c.id),
            {
                "source": snapshot.source,
                "started_at": started_at,
                "outcome": "running",
                "complete": snapshot.complete,
                "demo": snapshot.demo,
                "snapshot_taken_at": t,
                "rejected": {},
                "warnings": [],
                "offers_seen": 0,
                "offers_new": 0,
                "prices_changed": 0,
                "offers_withdrawn": 0,
            },
        ).scalar_one()
        state = conn.execute(select(STATE.c.last_complete_at).where(STATE.c.source == snapshot.source)).first()
        last_complete: datetime | None = state[0] if state else None
        current = _load_current(conn, snapshot.source)

        new_offers: list[dict[str, Any]] = []
        new_keys: list[tuple[str, ...]] = []
        reopen_ids: list[dict[str, Any]] = []
        meta_updates: list[dict[str, Any]] = []
        close_prices: list[dict[str, Any]] = []
        open_prices: list[dict[str, Any]] = []
        close_avail: list[dict[str, Any]] = []
        open_avail: list[dict[str, Any]] = []
        confirm_ids: list[dict[str, Any]] = []
        changed = 0

        def confirmed(at: datetime | None) -> datetime:
            """When a current row was last seen: its own stamp, or its source's last complete poll."""
            seen = [x for x in (at, last_complete) if x is not None and x <= t]
            return max(seen) if seen else t

        for key, obs in valid.items():
            gpu_model, gpu_known = resolve(snapshot.naming, obs.gpu_name, obs.gpu_memory_gb)
            meta = (
                gpu_model,
                gpu_known,
                obs.gpu_name,
                obs.gpu_count,
                obs.gpu_memory_gb,
                obs.vcpus,
                obs.memory_gb,
                obs.attrs,
                snapshot.demo,
            )
            cur = current.get(key)
            avail = (
                obs.availability.value if isinstance(obs.availability, Availability) else str(obs.availability),
                obs.available_quantity,
            )
            if cur is None:
                new_keys.append(key)
                new_offers.append(
                    {
                        "source": snapshot.source,
                        "provider": key[0],
                        "region": key[1],
                        "zone": key[2],
                        "instance_type": key[3],
                        "purchase": key[4],
                        "term": key[5],
                        "payment": key[6],
                        "plan": key[7],
                        "gpu_model": gpu_model,
                        "gpu_known": gpu_known,
                        "gpu_raw_name": obs.gpu_name,
                        "gpu_count": obs.gpu_count,
                        "gpu_memory_gb": obs.gpu_memory_gb,
                        "vcpus": obs.vcpus,
                        "memory_gb": obs.memory_gb,
                        "attrs": obs.attrs,
                        "demo": snapshot.demo,
                        "first_seen_at": t,
                        "withdrawn_at": None,
                    }
                )
                continue
            if (
                cur.price is not None
                and not cur.withdrawn
                and (obs.hourly_usd > cur.price * ABSURD_FACTOR or obs.hourly_usd * ABSURD_FACTOR < cur.price)
            ):
                rejected["price more than 10x away from the stored price"] += 1
                continue
            if cur.withdrawn:
                reopen_ids.append({"_id": cur.offer_id})
            if meta != cur.meta:
                meta_updates.append(
                    {
                        "_id": cur.offer_id,
                        "gpu_model": gpu_model,
                        "gpu_known": gpu_known,
                        "gpu_raw_name": obs.gpu_name,
                        "gpu_count": obs.gpu_count,
                        "gpu_memory_gb": obs.gpu_memory_gb,
                        "vcpus": obs.vcpus,
                        "memory_gb": obs.memory_gb,
                        "attrs": obs.attrs,
                        "demo": snapshot.demo,
                    }
                )
            if (
                cur.withdrawn
                or cur.price_id is None
                or cur.price != obs.hourly_usd
                or (cur.list_price != obs.list_hourly_usd)
            ):
                changed += 1
                if cur.price_id is not None and not cur.withdrawn:
                    close_prices.append({"_id": cur.price_id, "_to": t, "_confirmed": confirmed(cur.price_confirmed)})
                open_prices.append(
                    {
                        "offer_id": cur.offer_id,
                        "hourly_usd": obs.hourly_usd,
                        "list_hourly_usd": obs.list_hourly_usd,
                        "valid_from": t,
                        "valid_to": None,
                        "last_confirmed_at": t,
                        "poll_run_id": run_id,
                    }
                )
            elif not snapshot.complete:
                confirm_ids.append({"_id": cur.price_id, "_confirmed": t})
            if cur.withdrawn or cur.avail != avail:
                if cur.avail_id is not None and not cur.withdrawn:
                    close_avail.append({"_id": cur.avail_id, "_to": t, "_confirmed": confirmed(cur.avail_confirmed)})
                open_avail.append(
                    {
                        "offer_id": cur.offer_id,
                        "state": avail[0],
                        "quantity": avail[1],
                        "valid_from": t,
                        "valid_to": None,
                        "last_confirmed_at": t,
                    }
                )

        # Withdrawals: only a complete snapshot can say an offer is gone, and only within the guard.
        outcome = Outcome.OK
        warnings = list(snapshot.warnings)
        gone = [c for k, c in current.items() if not c.withdrawn and k not in valid] if snapshot.complete else []
        live = sum(1 for c in current.values() if not c.withdrawn)
        # Rows rejected for a fault are still listed by the source: they must not count as withdrawn.
        if gone and rejected:
            seen_raw = {
                _key_tuple(
                    o.key.provider,
                    o.key.region,
                    o.key.zone,
                    o.key.instance_type,
                    o.key.purchase,
                    o.key.term,
                    o.key.payment,
                    o.key.plan,
                )
                for o in snapshot.observations
            }
            gone = [c for k, c in current.items() if not c.withdrawn and k not in seen_raw]
        if gone and live and len(gone) > max_withdraw_share * live:
            outcome = Outcome.SUSPECT
            warnings.append(
                f"snapshot would withdraw {len(gone)} of {live} live offers (more than "
                f"{max_withdraw_share:.0%}): nothing withdrawn"
            )
            gone = []

        if new_offers:
            ids = [
                row.id
                for chunk in _chunks(new_offers)
                for row in conn.execute(insert(OFFERS).returning(OFFERS.c.id, sort_by_parameter_order=True), chunk)
            ]
            for offer_id, key in zip(ids, new_keys, strict=True):
                obs = valid[key]
                open_prices.append(
                    {
                        "offer_id": offer_id,
                        "hourly_usd": obs.hourly_usd,
                        "list_hourly_usd": obs.list_hourly_usd,
                        "valid_from": t,
                        "valid_to": None,
                        "last_confirmed_at": t,
                        "poll_run_id": run_id,
                    }
                )
                open_avail.append(
                    {
                        "offer_id": offer_id,
                        "state": str(obs.availability.value),
                        "quantity": obs.available_quantity,
                        "valid_from": t,
                        "valid_to": None,
                        "last_confirmed_at": t,
                    }
                )
        if reopen_ids:
            for chunk in _chunks(reopen_ids):
                conn.execute(update(OFFERS).where(OFFERS.c.id == bindparam("_id")).values(withdrawn_at=None), chunk)
        if meta_updates:
            cols: dict[str, Any] = {c: bindparam(c) for c in meta_updates[0] if c != "_id"}
            for chunk in _chunks(meta_updates):
                conn.execute(update(OFFERS).where(OFFERS.c.id == bindparam("_id")).values(**cols), chunk)
        _close(conn, PRICES, close_prices)
        _close(conn, AVAIL, close_avail)
        _insert(conn, PRICES, open_prices)
        _insert(conn, AVAIL, open_avail)
        if confirm_ids:
            stmt = (
                update(PRICES).where(PRICES.c.id == bindparam("_id")).values(last_confirmed_at=bindparam("_confirmed"))
            )
            for chunk in _chunks(confirm_ids):
                conn.execute(stmt, chunk)
        _withdraw(conn, gone, t, confirmed)

        if snapshot.complete and outcome is Outcome.OK:
            _set_last_complete(conn, snapshot.source, t, run_id)
        if outcome is Outcome.OK and (not snapshot.complete or rejected):
            outcome = Outcome.PARTIAL
        result = IngestResult(
            source=snapshot.source,
            run_id=run_id,
            outcome=outcome,
            offers_seen=len(snapshot.observations),
            offers_new=len(new_offers),
            prices_changed=changed + len(new_offers),
            offers_withdrawn=len(gone),
            rejected=rejected,
            warnings=warnings,
        )
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
                rejected=dict(rejected),
                warnings=warnings,
            )
        )
    return result


def _withdraw(
    conn: Connection, gone: list[_Current], t: datetime, confirmed: Callable[[datetime | None], datetime]
) -> None:
    if not gone:
        return
    _close(
        conn,
        PRICES,
        [{"_id": c.price_id, "_to": t, "_confirmed": confirmed(c.price_confirmed)} for c in gone if c.price_id],
    )
    _close(
        conn,
        AVAIL,
        [{"_id": c.avail_id, "_to": t, "_confirmed": confirmed(c.avail_confirmed)} for c in gone if c.avail_id],
    )
    stmt = update(OFFERS).where(OFFERS.c.id == bindparam("_id")).values(withdrawn_at=t)
    for chunk in _chunks([{"_id": c.offer_id} for c in gone]):
        conn.execute(stmt, chunk)


def _set_last_complete(conn: Connection, source: str, t: datetime, run_id: int) -> None:
    updated = conn.execute(
        update(STATE).where(STATE.c.source == source).values(last_complete_at=t, last_run_id=run_id)
    ).rowcount
    if not updated:
        conn.execute(insert(STATE), {"source": source, "last_complete_at": t, "last_run_id": run_id})
