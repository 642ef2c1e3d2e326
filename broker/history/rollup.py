"""Daily roll-ups of closed days (see ``broker.history.models``): built incrementally, rebuilt after backfills.

``refresh`` is cheap when nothing is due (two indexed reads) and history queries call it. A first build over months
of history takes a while (a week per transaction; ~15 s per month of 20k offers on SQLite): call it at start-up or
after polls rather than leave it to the first request. Days are rolled up to midnight UTC one hour past, so a poll
in flight at midnight lands before its day is closed; a poll recorded later for a closed day (a backfill, an
import) is noticed through ``poll_runs`` and that day onwards is rebuilt.
"""

from __future__ import annotations

import itertools
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from broker.history import repository as repo
from broker.history.accumulate import accumulate
from broker.history.schemas import HistoryQuery
from broker.store.bulk import Dialect

DAY = 86400
SETTLE = timedelta(hours=1)
CHUNK_DAYS = 7
GAP_STORE_FACTOR = 1.5  # store spacings beyond 1.5x the median; queries apply their own (larger) threshold
STATE = "daily"
OBSERVED = ", ".join(f"'{o}'" for o in repo.OBSERVED)


def day_floor(t: datetime) -> datetime:
    return datetime.fromtimestamp(int(t.timestamp()) // DAY * DAY, UTC)


def _state(conn: Connection) -> tuple[datetime | None, int, datetime | None] | None:
    """(built_to, last poll run accounted for, cut-off whose prices are stored)."""
    row = conn.execute(
        text("SELECT built_to, run_id, cutoff_at FROM history_rollup_state WHERE name = :n"), {"n": STATE}
    ).first()
    if row is None:
        return None
    read = Dialect(conn).read_dt
    return read(row[0]), int(row[1]), read(row[2])


def _invalidated_from(conn: Connection, built_to: datetime, run_id: int) -> datetime | None:
    """The earliest time a poll recorded after the last build touched, if it lies in the rolled-up days."""
    raw = conn.execute(
        text(
            "SELECT MIN(COALESCE(snapshot_taken_at, started_at)) FROM poll_runs WHERE id > :rid "
            "AND COALESCE(snapshot_taken_at, started_at) < :built"
        ),
        {"rid": run_id, "built": Dialect(conn).dt(built_to)},
    ).scalar()
    return Dialect(conn).read_dt(raw)


def refresh(engine: Engine, now: datetime) -> datetime:
    """Bring the roll-ups up to date; returns how far they reach (exclusive). Builds a week per transaction, so
    a first build over months of history never holds SQLite's write lock for long (ingest keeps going)."""
    target = day_floor(now - SETTLE)
    with engine.connect() as conn:
        state = _state(conn)
        if (
            state is not None
            and state[0] == target
            and state[2] == target
            and _invalidated_from(conn, target, state[1]) is None
        ):
            return target
    while True:
        with engine.begin() as conn:
            built_to = _step(conn, target)
        if built_to >= target:
            return built_to


def _step(conn: Connection, target: datetime) -> datetime:
    """One transaction: drop what a late poll invalidated, then roll up at most CHUNK_DAYS more."""
    db = Dialect(conn)
    # the first write takes SQLite's lock; on PostgreSQL the row lock serialises concurrent builders
    verb, conflict = ("INSERT", "ON CONFLICT DO NOTHING") if db.postgres else ("INSERT OR IGNORE", "")
    conn.execute(
        text(f"{verb} INTO history_rollup_state (name, built_to, run_id) VALUES (:n, NULL, 0) {conflict}"),
        {"n": STATE},
    )
    if db.postgres:
        conn.execute(text("SELECT name FROM history_rollup_state WHERE name = :n FOR UPDATE"), {"n": STATE})
    state = _state(conn)
    assert state is not None
    built_to, seen_run, cutoff_at = state
    run_id = int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM poll_runs")).scalar_one())
    if built_to is not None:
        stale = _invalidated_from(conn, built_to, seen_run)
        if stale is not None:
            built_to = _drop_from(conn, day_floor(stale))
            cutoff_at = None if cutoff_at is None or cutoff_at >= built_to else cutoff_at
    if built_to is None:
        first = db.read_dt(conn.execute(text("SELECT MIN(valid_from) FROM price_intervals")).scalar())
        built_to = day_floor(first) if first is not None else target
    if built_to < target:
        upto = min(target, built_to + timedelta(days=CHUNK_DAYS))
        _build(conn, built_to, upto)
        built_to = upto
    if cutoff_at != built_to:
        _write_cutoff(conn, built_to, cutoff_at)
    conn.execute(
        text("UPDATE history_rollup_state SET built_to = :b, run_id = :r, cutoff_at = :b WHERE name = :n"),
        {"b": db.dt(built_to), "r": run_id, "n": STATE},
    )
    return built_to


def _drop_from(conn: Connection, day: datetime) -> datetime:
    db = Dialect(conn)
    t = db.dt(day)
    conn.execute(text("DELETE FROM history_price_daily WHERE day >= :d"), {"d": int(day.timestamp()) // DAY})
    conn.execute(text("DELETE FROM history_poll_gaps WHERE gap_to > :t"), {"t": t})
    conn.execute(text("DELETE FROM history_withdrawals WHERE gone_at >= :t"), {"t": t})
    conn.execute(text("DELETE FROM history_price_cutoff WHERE day >= :d"), {"d": int(day.timestamp()) // DAY})
    return day


def _write_cutoff(conn: Connection, at: datetime, previous: datetime | None) -> None:
    """Store each offer's price in force at ``at`` (the new ``built_to``) with its class; keep the ``previous``
    cut-off for queries that read it while this build ran, drop older ones."""
    db = Dialect(conn)
    day = int(at.timestamp()) // DAY
    keep = int(previous.timestamp()) // DAY if previous is not None and previous < at else day
    conn.execute(text("DELETE FROM history_price_cutoff WHERE day < :keep OR day >= :d"), {"keep": keep, "d": day})
    cols = "o.gpu_model, o.provider, o.purchase, o.id AS offer_id, o.gpu_count, p.id AS interval_id, p.hourly_usd"
    held = repo.in_force_at(cols, "o.gpu_count > 0", db.postgres)
    conn.execute(
        text(
            "INSERT INTO history_price_cutoff (day, gpu_model, provider, purchase, offer_id, gpu_count, interval_id, "
            "hourly_usd) "
            f"SELECT :d, x.* FROM ({held}) x ORDER BY x.gpu_model, x.provider, x.purchase, x.offer_id"
        ),
        {"d": day, "start": db.dt(at)},
    )
    if db.postgres:  # fresh statistics, or the planner takes the new day's rows for none and loops over them
        conn.execute(text("ANALYZE history_price_cutoff"))


def _build(conn: Connection, start: datetime, end: datetime) -> None:
    db = Dialect(conn)
    s0, e0 = int(start.timestamp()), int(end.timestamp())
    n = (e0 - s0) // DAY
    q = HistoryQuery(start=start, end=end, step_s=DAY, step="1d", group_by=repo.ROLLUP_GROUPS)
    per_unit = {unit: accumulate(conn, q, s0, e0, DAY, n, unit) for unit in ("gpu_hour", "instance_hour")}
    rows: list[tuple[Any, ...]] = []
    for g, b in per_unit["gpu_hour"].items():
        inst = {k: v for k, *v in per_unit["instance_hour"][g].values()}
        for k, mn, mx, ws, secs, last in b.values():
            i_mn, i_mx, i_ws, _, i_last = inst[k]
            rows.append((*g, s0 // DAY + k, secs, mn, mx, ws, last, i_mn, i_mx, i_ws, i_last))
    # in key order (model, day, ...): on PostgreSQL, whose heap keeps insertion order, a model's days share pages
    rows.sort(key=lambda r: (r[0], r[3], r[1], r[2]))
    db.insert("history_price_daily", ("gpu_model", "provider", "purchase", "day", "secs", "mn_g", "mx_g", "ws_g",
                                      "last_g", "mn_i", "mx_i", "ws_i", "last_i"), rows)  # fmt: skip
    _build_gaps(conn, start, end)
    verb = "INSERT" if db.postgres else "INSERT OR IGNORE"
    conflict = "ON CONFLICT DO NOTHING" if db.postgres else ""
    conn.execute(
        text(
            f"{verb} INTO history_withdrawals (offer_id, gone_at) SELECT p.offer_id, p.valid_to FROM price_intervals p "
            "WHERE p.valid_to >= :a AND p.valid_to < :b AND NOT EXISTS (SELECT 1 FROM price_intervals n "
            f"WHERE n.offer_id = p.offer_id AND n.valid_from = p.valid_to) {conflict}"
        ),
        {"a": db.dt(start), "b": db.dt(end)},
    )


def _build_gaps(conn: Connection, start: datetime, end: datetime) -> None:
    db = Dialect(conn)
    sources = [r[0] for r in conn.execute(text("SELECT DISTINCT source FROM poll_runs"))]
    rows = []
    for source in sources:
        params = {"src": source, "a": db.dt(start), "b": db.dt(end)}
        recent = conn.execute(
            text(
                "SELECT snapshot_taken_at FROM poll_runs WHERE source = :src AND snapshot_taken_at < :b "
                f"AND outcome IN ({OBSERVED}) ORDER BY snapshot_taken_at DESC LIMIT 200"
            ),
            params,
        ).all()
        times = [t for (raw,) in reversed(recent) if (t := db.read_dt(raw)) is not None]
        spacing = [(b - a).total_seconds() for a, b in itertools.pairwise(times) if b > a]
        if not spacing:
            continue
        limit = GAP_STORE_FACTOR * statistics.median(spacing)
        prior = conn.execute(
            text(
                "SELECT MAX(snapshot_taken_at) FROM poll_runs WHERE source = :src AND snapshot_taken_at < :a "
                f"AND outcome IN ({OBSERVED})"
            ),
            params,
        ).scalar()
        runs = conn.execute(
            text(
                "SELECT snapshot_taken_at FROM poll_runs WHERE source = :src AND snapshot_taken_at >= :a "
                "AND snapshot_taken_at < :b "
                f"AND outcome IN ({OBSERVED}) ORDER BY snapshot_taken_at"
            ),
            params,
        ).all()
        seq = [t for raw in ([prior] if prior is not None else []) + [r[0] for r in runs]
               if (t := db.read_dt(raw)) is not None]  # fmt: skip
        for a, b in itertools.pairwise(seq):
            gap = (b - a).total_seconds()
            if gap > limit:
                rows.append((source, db.dt(a), db.dt(b), int(gap)))
    verb = "INSERT" if db.postgres else "INSERT OR IGNORE"
    conflict = "ON CONFLICT DO NOTHING" if db.postgres else ""
    db.execute_many(
        f"{verb} INTO history_poll_gaps (source, gap_from, gap_to, seconds) VALUES (?, ?, ?, ?) {conflict}", rows
    )
