"""History reads. The bucket aggregation runs in SQL: a year of spot prices is too many rows to ship to Python.

Times are compared as whole epoch seconds (``unixepoch`` on SQLite, ``extract(epoch)`` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

from broker.history.schemas import HistoryQuery
from broker.store.bulk import Dialect

GROUP_COLUMNS = {"offer": "o.id", "provider": "o.provider", "gpu_model": "o.gpu_model", "purchase": "o.purchase",
                 "region": "o.region"}  # fmt: skip
OBSERVED = ("ok", "partial", "suspect")  # outcomes that applied prices (suspect withdraws nothing, but applies)


@dataclass(frozen=True, slots=True)
class OfferRow:
    id: int
    source: str
    provider: str
    region: str
    zone: str
    instance_type: str
    purchase: str
    term: str
    payment: str
    plan: str
    gpu_model: str
    gpu_count: int
    withdrawn_at: datetime | None


def overlapping(select: str, where: str, pg: bool, closed_at_start: bool = False) -> str:
    """``SELECT {select}`` over ``offers o`` and ``price_intervals p`` for the prices in force at some time in
    [:start, :end): those set inside it (index on offer, valid_from) and, per offer, the one in force at :start
    (:func:`in_force_at`) — never every price since the offer appeared. ``closed_at_start`` also returns a price
    that ended exactly at :start (zero seconds in range: for telling a withdrawal from a price change)."""
    inside = (
        f"SELECT {select} FROM offers o JOIN price_intervals p ON p.offer_id = o.id WHERE {where} "
        "AND p.valid_from >= :start AND p.valid_from < :end"
    )
    return f"{inside} UNION ALL {in_force_at(select, where, pg, closed_at_start)}"


def in_force_at(select: str, where: str, pg: bool, closed_at_start: bool = False) -> str:
    """``SELECT {select}`` per offer of ``offers o`` (``where``) with ``p`` its price in force at :start (one index
    seek each; LATERAL on PostgreSQL, whose planner would otherwise hash every current price)."""
    cmp = ">=" if closed_at_start else ">"
    if pg:
        return (
            f"SELECT {select} FROM offers o CROSS JOIN LATERAL (SELECT b.* FROM price_intervals b "
            "WHERE b.offer_id = o.id AND b.valid_from < :start ORDER BY b.valid_from DESC LIMIT 1) p "
            f"WHERE {where} AND (p.valid_to IS NULL OR p.valid_to {cmp} :start)"
        )
    return (
        f"SELECT {select} FROM offers o JOIN price_intervals p ON p.id = (SELECT b.id FROM price_intervals b "
        "WHERE b.offer_id = o.id AND b.valid_from < :start ORDER BY b.valid_from DESC LIMIT 1) "
        f"WHERE {where} AND (p.valid_to IS NULL OR p.valid_to {cmp} :start)"
    )


def _utc(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


class Sql:
    """The few expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.db = Dialect(conn)
        self.pg = self.db.postgres

    def epoch(self, col: str) -> str:
        return f"CAST(floor(extract(epoch FROM {col})) AS BIGINT)" if self.pg else f"unixepoch({col})"

    def least(self, a: str, b: str) -> str:
        return f"LEAST({a}, {b})" if self.pg else f"min({a}, {b})"

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})" if self.pg else f"max({a}, {b})"

    def price(self, unit: str, col: str = "p.hourly_usd") -> str:
        usd = f"CAST({col} AS DOUBLE PRECISION)" if self.pg else f"CAST({col} AS REAL)"
        return f"{usd} / o.gpu_count" if unit == "gpu_hour" else usd

    def dt(self, value: datetime) -> Any:
        return self.db.dt(value)


def offer_where(q: HistoryQuery, params: dict[str, Any], o: str = "o") -> str:
    """SQL conditions on ``offers o`` (or a roll-up aliased ``o``) for the query's filters, bound into ``params``."""
    conds = ["o.gpu_count > 0"] if o == "o" else []
    if q.gpu_models is not None:
        names = []
        for i, model in enumerate(q.gpu_models):
            params[f"g{i}"] = model
            names.append(f":g{i}")
        conds.append(f"{o}.gpu_model IN ({', '.join(names)})")
    for col in ("purchase", "region", "instance_type"):
        value = getattr(q, col)
        if value is not None:
            params[col] = value
            conds.append(f"{o}.{col} = :{col}")
    if q.provider is not None:
        params["provider"] = q.provider.lower()
        conds.append(f"lower({o}.provider) = :provider")
    if q.offer_id is not None:
        params["offer_id"] = q.offer_id
        conds.append(f"{o}.id = :offer_id")
    return " AND ".join(conds) or "1 = 1"


OFFER_SELECT = (
    "SELECT o.id, o.source, o.provider, o.region, o.zone, o.instance_type, o.purchase, o.term, o.payment, o.plan, "
    "o.gpu_model, o.gpu_count, o.withdrawn_at FROM offers o"
)


def offer_sources(conn: Connection, q: HistoryQuery) -> set[str]:
    params: dict[str, Any] = {}
    return {
        r[0]
        for r in conn.execute(text(f"SELECT DISTINCT o.source FROM offers o WHERE {offer_where(q, params)}"), params)
    }


def count_offers(conn: Connection, q: HistoryQuery) -> int:
    params: dict[str, Any] = {}
    return int(conn.execute(text(f"SELECT count(*) FROM offers o WHERE {offer_where(q, params)}"), params).scalar_one())


def matching_offers(conn: Connection, q: HistoryQuery) -> list[OfferRow]:
    params: dict[str, Any] = {}
    rows = conn.execute(text(f"{OFFER_SELECT} WHERE {offer_where(q, params)} ORDER BY o.id"), params).all()
    return _offer_rows(conn, rows)


def offers_by_ids(conn: Connection, ids: set[int]) -> list[OfferRow]:
    out: list[OfferRow] = []
    ordered = sorted(ids)
    for i in range(0, len(ordered), 500):  # bounded IN lists (SQLite caps bound parameters)
        chunk = ordered[i : i + 500]
        params = {f"i{j}": v for j, v in enumerate(chunk)}
        marks = ", ".join(f":i{j}" for j in range(len(chunk)))
        out += _offer_rows(conn, conn.execute(text(f"{OFFER_SELECT} WHERE o.id IN ({marks})"), params).all())
    return out


def _offer_rows(conn: Connection, rows: Sequence[Any]) -> list[OfferRow]:
    db = Dialect(conn)
    return [
        OfferRow(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], int(r[11]), db.read_dt(r[12]))
        for r in rows
    ]


def bucket_rows(
    conn: Connection,
    q: HistoryQuery,
    start_s: int,
    end_s: int,
    step_s: int,
    unit: str | None = None,
    cutoff_day: int | None = None,
) -> Sequence[Any]:
    """Per (group, bucket): min, max, sum(price x seconds), seconds, min price at the bucket end — over the prices
    that touch at most two buckets, which SQL folds into each bucket directly. A price spanning more buckets comes
    back as its own row (k < 0: its group, price, first and last second) for the caller to spread over its range.

    Columns: *group values, k, min, max, weighted sum, seconds, last, e_from, e_to, spans_many.
    ``cutoff_day``: ``start_s`` is the roll-up's cut-off of that day and the range a day or so: only the prices set
    since the cut-off, read from the indexes on valid_from and valid_to (:func:`held_rows` has those in force at
    it), not a seek per offer.
    """
    s = Sql(conn)
    params: dict[str, Any] = {"S": start_s, "STEP": step_s, "END": end_s, "start": s.dt(_utc(start_s)),
                              "end": s.dt(_utc(end_s))}  # fmt: skip
    where = offer_where(q, params)
    gcols = [GROUP_COLUMNS[g] for g in q.group_by]
    gsel = ", ".join(f"{c} AS g{i}" for i, c in enumerate(gcols))
    gout = ", ".join(f"x.g{i}" for i in range(len(gcols)))
    e_from = s.greatest(s.epoch("p.valid_from"), ":S")
    price = s.price(unit or q.unit)
    if cutoff_day is None:
        e_to = s.least(f"COALESCE({s.epoch('p.valid_to')}, :END)", ":END")
        ctes, inner = (
            "",
            overlapping(f"{gsel}, p.id AS pid, {price} AS price, {e_from} AS e_f, {e_to} AS e_t", where, s.pg),
        )
    else:
        _check_tail(q, start_s, end_s, cutoff_day)
        e_to = s.least(f"COALESCE({s.epoch('c.valid_to')}, :END)", ":END")
        # the prices set since the cut-off, the offer and price from the valid_from index, valid_to from the closes
        ctes = f"{CLOSES}, "
        inner = (
            f"SELECT {gsel}, p.id AS pid, {price} AS price, {e_from} AS e_f, {e_to} AS e_t FROM price_intervals p "
            f"CROSS JOIN offers o LEFT JOIN closes c ON c.id = p.id WHERE o.id = p.offer_id AND {where} "
            "AND p.valid_from >= :start AND p.valid_from < :end"
        )
    spans = "(x.k2 - x.k1)"
    bucket = f"(CASE WHEN {spans} > 1 THEN -x.pid - 1 ELSE x.k1 + j.j * {spans} END)"
    b_start = f"(:S + {bucket} * :STEP)"
    b_end = f"({b_start} + :STEP)"
    dur = f"({s.least('x.e_t', b_end)} - {s.greatest('x.e_f', b_start)})"
    last = f"(CASE WHEN x.e_t >= {s.least(b_end, ':END')} THEN x.price END)"
    # materialised: every row's epoch seconds are computed once, not once per expression that uses them
    sql = (
        f"WITH {ctes}x AS MATERIALIZED (SELECT y.*, (y.e_f - :S) / :STEP AS k1, (y.e_t - 1 - :S) / :STEP AS k2 "
        f"FROM ({inner}) y WHERE y.e_t > y.e_f) "
        f"SELECT {gout}, {bucket} AS k, MIN(x.price), MAX(x.price), SUM(x.price * {dur}), SUM({dur}), MIN({last}), "
        f"MIN(x.e_f), MAX(x.e_t), MAX(CASE WHEN {spans} > 1 THEN 1 ELSE 0 END) FROM x "
        f"JOIN (SELECT 0 AS j UNION ALL SELECT 1 AS j) j ON j.j <= (CASE WHEN {spans} = 1 THEN 1 ELSE 0 END) "
        f"GROUP BY {gout + ', ' if gout else ''}{bucket}"
    )
    return conn.execute(text(sql), params).all()


# The closes since the cut-off (few: a day's at most), read once from the valid_to index for a hash or index join.
CLOSES = (
    "closes AS MATERIALIZED (SELECT id, valid_to FROM price_intervals WHERE valid_to >= :start AND valid_to < :end)"
)


def _check_tail(q: HistoryQuery, start_s: int, end_s: int, cutoff_day: int) -> None:
    """The stored cut-off serves the open tail of a query the roll-up serves (no offer, region or instance type
    filter: it keeps the class columns only), a day or so from the cut-off."""
    assert cutoff_day * 86400 == start_s and end_s - start_s <= 2 * 86400
    assert q.group_by and set(q.group_by) <= set(ROLLUP_GROUPS)
    assert q.region is None and q.instance_type is None and q.offer_id is None


def held_rows(
    conn: Connection, q: HistoryQuery, start_s: int, end_s: int, cutoff_day: int, unit: str | None = None
) -> Sequence[Any]:
    """The prices in force at the roll-up cut-off ``start_s`` (day ``cutoff_day``), from the stored cut-off, per
    group and end (epoch seconds: the close if one came since, else ``end_s``), folded in SQL: *group values, end,
    min, max, sum of prices, count. Most are still open: a row per group for those whatever the number of offers,
    and one per group and poll instant for the few closed since."""
    _check_tail(q, start_s, end_s, cutoff_day)
    s = Sql(conn)
    params: dict[str, Any] = {"S": start_s, "END": end_s, "start": s.dt(_utc(start_s)), "end": s.dt(_utc(end_s)),
                              "cutoff_day": cutoff_day}  # fmt: skip
    where = offer_where(q, params)
    gcols = [GROUP_COLUMNS[g] for g in q.group_by]
    gsel = "".join(f"{c} AS g{i}, " for i, c in enumerate(gcols))
    gout = "".join(f"y.g{i}, " for i in range(len(gcols)))
    price = s.price(unit or q.unit, "o.hourly_usd")
    e_to = s.least(f"COALESCE({s.epoch('c.valid_to')}, :END)", ":END")
    sql = (
        f"WITH {CLOSES} SELECT {gout}y.e_t, MIN(y.price), MAX(y.price), SUM(y.price), COUNT(*) FROM (SELECT {gsel}"
        f"{price} AS price, {e_to} AS e_t FROM history_price_cutoff o LEFT JOIN closes c ON c.id = o.interval_id "
        f"WHERE o.day = :cutoff_day AND {where}) y WHERE y.e_t > :S GROUP BY {gout}y.e_t"
    )
    return conn.execute(text(sql), params).all()


def raw_rows(conn: Connection, q: HistoryQuery, end: datetime) -> Sequence[Any]:
    """(offer id, valid_from, valid_to, price) of every price in force in the range, per offer in time order."""
    s = Sql(conn)
    params: dict[str, Any] = {"start": s.dt(q.start), "end": s.dt(end)}
    where = offer_where(q, params)
    sql = overlapping(f"o.id AS oid, p.valid_from AS vf, p.valid_to, {s.price(q.unit)}", where, s.pg)
    return conn.execute(text(f"SELECT * FROM ({sql}) x ORDER BY x.oid, x.vf"), params).all()


def withdrawn_periods(
    conn: Connection, q: HistoryQuery, start: datetime, end: datetime
) -> list[tuple[int, datetime, datetime | None]]:
    """(offer id, from, to or None) where a listed offer had no price: a close not followed by a reopening at once,
    for closes in [start, end)."""
    s = Sql(conn)
    params: dict[str, Any] = {"start": s.dt(start), "end": s.dt(end)}
    where = offer_where(q, params)
    rows = conn.execute(
        text(
            "SELECT x.offer_id, x.valid_to, x.next_from FROM (SELECT y.offer_id, y.valid_to, LEAD(y.valid_from) "
            "OVER (PARTITION BY y.offer_id ORDER BY y.valid_from) AS next_from FROM "
            f"({overlapping('p.offer_id, p.valid_from, p.valid_to', where, s.pg, closed_at_start=True)}) y) x "
            "WHERE x.valid_to IS NOT NULL AND x.valid_to >= :start AND x.valid_to < :end "
            "AND (x.next_from IS NULL OR x.next_from > x.valid_to)"
        ),
        params,
    ).all()
    return _periods(s, rows)


def _periods(s: Sql, rows: Sequence[Any]) -> list[tuple[int, datetime, datetime | None]]:
    """(offer id, withdrawn at, back at or None) from raw rows."""
    out: list[tuple[int, datetime, datetime | None]] = []
    for offer_id, gone, back in rows:
        since = s.db.read_dt(gone)
        assert since is not None
        out.append((int(offer_id), since, s.db.read_dt(back)))
    return out


def recent_withdrawals(
    conn: Connection, q: HistoryQuery, start: datetime, end: datetime
) -> list[tuple[int, datetime, datetime | None]]:
    """:func:`withdrawn_periods` for a short recent range (a roll-up's open tail, a day or so), read from the range's
    closes (index on valid_to, offer) and its opens at the same instants (index on valid_from, offer) rather than
    from every matching offer's prices: cheap however many offers match, dear over a long range."""
    s = Sql(conn)
    params: dict[str, Any] = {"start": s.dt(start), "end": s.dt(end)}
    where = offer_where(q, params)
    rows = conn.execute(
        text(
            # the opens in the range: one read of the valid_from index, then a hash or index anti-join
            "WITH opens AS MATERIALIZED (SELECT offer_id, valid_from FROM price_intervals WHERE valid_from >= :start "
            "AND valid_from < :end) "
            "SELECT p.offer_id, p.valid_to, (SELECT MIN(n.valid_from) FROM price_intervals n WHERE n.offer_id = "
            "p.offer_id AND n.valid_from > p.valid_to AND n.valid_from < :end) FROM price_intervals p "
            f"JOIN offers o ON o.id = p.offer_id WHERE {where} AND p.valid_to >= :start AND p.valid_to < :end "
            # o.id, not p.offer_id: the check waits for the offer filter (SQLite places it by the tables it names)
            "AND NOT EXISTS (SELECT 1 FROM opens n WHERE n.valid_from = p.valid_to AND n.offer_id = o.id) "
            "ORDER BY p.valid_to, p.offer_id"
        ),
        params,
    ).all()
    return _periods(s, rows)


def _thresholds(thresholds: dict[str, int], params: dict[str, Any]) -> str:
    """A relation (source, thr) of the sources and their gap thresholds, bound into ``params``: one query for all
    sources rather than a few per source."""
    rows = []
    for i, (source, thr) in enumerate(sorted(thresholds.items())):
        params[f"src{i}"], params[f"thr{i}"] = source, thr
        rows.append(f"SELECT :src{i} AS source, :thr{i} AS thr")
    return " UNION ALL ".join(rows)


def poll_gaps(
    conn: Connection, thresholds: dict[str, int], start: datetime, end: datetime
) -> list[tuple[str, datetime | None, datetime | None]]:
    """(source, last poll before, next poll after) for every stretch longer than the source's threshold (seconds)
    without an applied poll between ``start`` and ``end``; next None: none since (up to ``end``). Per source in
    name order, then time."""
    if not thresholds:
        return []
    s = Sql(conn)
    params: dict[str, Any] = {"start": s.dt(start), "end": s.dt(end)}
    sources = _thresholds(thresholds, params)
    outcomes = ", ".join(f"'{o}'" for o in OBSERVED)
    applied = f"r.source = s.source AND r.outcome IN ({outcomes})"
    in_range = "r.snapshot_taken_at >= :start AND r.snapshot_taken_at < :end"
    edges = conn.execute(
        text(
            f"SELECT s.source, (SELECT max(r.snapshot_taken_at) FROM poll_runs r WHERE {applied} "
            f"AND r.snapshot_taken_at < :start), (SELECT min(r.snapshot_taken_at) FROM poll_runs r WHERE {applied} "
            f"AND {in_range}), (SELECT max(r.snapshot_taken_at) FROM poll_runs r WHERE {applied} AND {in_range}) "
            f"FROM ({sources}) s"
        ),
        params,
    ).all()
    inner = conn.execute(
        text(
            "SELECT x.source, x.prev_t, x.t FROM (SELECT r.source, r.snapshot_taken_at AS t, "
            "LAG(r.snapshot_taken_at) OVER (PARTITION BY r.source ORDER BY r.snapshot_taken_at) AS prev_t "
            f"FROM ({sources}) s JOIN poll_runs r ON {applied} AND {in_range}) x "
            f"JOIN ({sources}) s ON s.source = x.source "
            f"WHERE x.prev_t IS NOT NULL AND {s.epoch('x.t')} - {s.epoch('x.prev_t')} > s.thr ORDER BY x.t"
        ),
        params,
    ).all()
    read = s.db.read_dt
    by_source: dict[str, list[tuple[str, datetime | None, datetime | None]]] = {}
    for source, a, b in inner:
        by_source.setdefault(source, []).append((source, read(a), read(b)))
    out: list[tuple[str, datetime | None, datetime | None]] = []
    for source, before, first_raw, last_raw in sorted(edges, key=lambda r: str(r[0])):
        thr = thresholds[source]
        first, last, prior = read(first_raw), read(last_raw), read(before)
        # before a source's first poll ever there is no gap, only no data
        if prior is not None and ((first or end) - prior).total_seconds() > thr:
            out.append((source, prior, first))
        out += by_source.get(source, [])
        if last is not None and (end - last).total_seconds() > thr:
            out.append((source, last, None))
    return out


def recent_poll_times(conn: Connection, source: str, limit: int = 50) -> list[datetime]:
    rows = conn.execute(
        text(
            "SELECT snapshot_taken_at FROM poll_runs WHERE source = :src AND snapshot_taken_at IS NOT NULL "
            "ORDER BY snapshot_taken_at DESC LIMIT :n"
        ),
        {"src": source, "n": limit},
    ).all()
    read = Dialect(conn).read_dt
    return [t for (raw,) in rows if (t := read(raw)) is not None]


# --- roll-ups ------------------------------------------------------------------------------------------------------

ROLLUP_GROUPS = ("gpu_model", "provider", "purchase")


def daily_rows(conn: Connection, q: HistoryQuery, d0: int, d1: int) -> Sequence[Any]:
    """Rolled-up days [d0, d1) per (group, day): min, max, weighted sum, seconds, last — in the query's unit."""
    params: dict[str, Any] = {"d0": d0, "d1": d1}
    where = offer_where(q, params, "r")
    sfx = "g" if q.unit == "gpu_hour" else "i"
    gcols = ", ".join(f"r.{g}" for g in q.group_by)
    return conn.execute(
        text(
            f"SELECT {gcols}, r.day, MIN(r.mn_{sfx}), MAX(r.mx_{sfx}), SUM(r.ws_{sfx}), SUM(r.secs), "
            f"MIN(r.last_{sfx}) FROM history_price_daily r WHERE {where} AND r.day >= :d0 AND r.day < :d1 "
            f"GROUP BY {gcols}, r.day"
        ),
        params,
    ).all()


def stored_gaps(
    conn: Connection, thresholds: dict[str, int], start: datetime, end: datetime
) -> list[tuple[str, datetime, datetime]]:
    """The roll-up's polling gaps overlapping [start, end) longer than their source's threshold, per source in
    name order, then time."""
    if not thresholds:
        return []
    s = Sql(conn)
    params: dict[str, Any] = {"start": s.dt(start), "end": s.dt(end)}
    rows = conn.execute(
        text(
            f"SELECT g.source, g.gap_from, g.gap_to FROM ({_thresholds(thresholds, params)}) s "
            "JOIN history_poll_gaps g ON g.source = s.source AND g.gap_from < :end AND g.gap_to > :start "
            "AND g.seconds > s.thr ORDER BY g.source, g.gap_from"
        ),
        params,
    ).all()
    out = []
    for source, a, b in rows:
        fa, fb = s.db.read_dt(a), s.db.read_dt(b)
        assert fa is not None and fb is not None
        out.append((source, fa, fb))
    return out


def stored_withdrawals(
    conn: Connection, q: HistoryQuery, before: datetime
) -> list[tuple[int, datetime, datetime | None]]:
    """Rolled-up withdrawals (gone before ``before``) of the query's offers, with when each offer came back."""
    s = Sql(conn)
    params: dict[str, Any] = {"before": s.dt(before)}
    where = offer_where(q, params)
    rows = conn.execute(
        text(
            "SELECT w.offer_id, w.gone_at, (SELECT MIN(p.valid_from) FROM price_intervals p WHERE p.offer_id = "
            "w.offer_id AND p.valid_from > w.gone_at) FROM history_withdrawals w JOIN offers o ON o.id = w.offer_id "
            f"WHERE {where} AND w.gone_at < :before"
        ),
        params,
    ).all()
    out = []
    for offer_id, gone, back in rows:
        g = s.db.read_dt(gone)
        assert g is not None
        out.append((int(offer_id), g, s.db.read_dt(back)))
    return out
