"""Price history as step functions: a price holds from ``valid_from`` until ``valid_to`` (or now).

For a bucket [b, b + step): ``min``/``max`` are over every price in force at any time in it, ``avg`` weights each
price by the seconds it was in force (summed over the group's offers), ``last`` is the price in force at the bucket
end (the lowest across the group). A bucket in which no price was in force has no point: nothing is interpolated.
Polling gaps and withdrawn periods are reported beside the series.
"""

from __future__ import annotations

import itertools
import logging
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from broker.history import repository as repo
from broker.history import rollup
from broker.history.accumulate import Buckets, accumulate
from broker.history.repository import OfferRow
from broker.history.schemas import AGGS, MAX_OFFER_SERIES, MAX_POINTS, UNITS, BadQuery, HistoryQuery

log = logging.getLogger(__name__)
GAP_FACTOR = 2.5  # no applied poll for longer than 2.5 poll intervals is a gap
MAX_GAPS = 1000
MAX_TOTAL_POINTS = 1_000_000  # group_by=offer: series x points
DAY = 86400
MAX_TAIL = timedelta(days=2)  # roll-ups reach to a midnight at most 25 hours back (see rollup.SETTLE)


@dataclass(slots=True)
class Series:
    key: dict[str, Any]
    points: list[tuple[datetime, float]]


@dataclass(slots=True)
class HistoryResult:
    query: HistoryQuery
    series: list[Series]
    gaps: list[dict[str, Any]] = field(default_factory=list)
    gaps_truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        q = self.query
        return {
            "unit": UNITS[q.unit],
            "from": q.start.isoformat(),
            "to": q.end.isoformat(),
            "step": q.step,
            "agg": q.agg if q.step_s is not None else None,
            "agg_definition": AGGS[q.agg] if q.step_s is not None else "every price change (step=raw)",
            "group_by": list(q.group_by),
            "series": [
                {"key": s.key, "points": [{"t": t.isoformat(), "value": v} for t, v in s.points]} for s in self.series
            ],
            "gaps": self.gaps,
            "gaps_truncated": self.gaps_truncated,
        }


def offer_key(o: OfferRow) -> dict[str, Any]:
    return {
        "offer_id": o.id, "provider": o.provider, "region": o.region, "zone": o.zone or None,
        "instance_type": o.instance_type, "purchase": o.purchase, "term": o.term or None,
        "payment": o.payment or None, "plan": o.plan or None, "gpu_model": o.gpu_model, "gpu_count": o.gpu_count,
        "source": o.source,
    }  # fmt: skip


def price_history(
    engine: Engine,
    q: HistoryQuery,
    *,
    now: datetime,
    intervals: Mapping[str, float] | None = None,
    use_rollup: bool = True,
) -> HistoryResult:
    """``intervals``: configured poll interval (minutes) per source, for gap detection. ``use_rollup=False``
    reads every interval (the roll-up path must give the same answer: the tests compare them)."""
    end = min(q.end, now)
    built_to = None
    if use_rollup and q.start < rollup.day_floor(now):
        try:
            built_to = rollup.refresh(engine, now)
        except OperationalError as exc:  # a read-only replica, a lock held too long: answer from the intervals
            log.warning("history roll-up not refreshed: %s", exc)
    with engine.connect() as conn:
        sources = repo.offer_sources(conn, q)
        by_id: dict[int, OfferRow] = {}
        if "offer" in q.group_by:
            count = repo.count_offers(conn, q)
            n_points = 1 if q.step_s is None else -(-(q.end - q.start).total_seconds() // q.step_s)
            if count > MAX_OFFER_SERIES or count * n_points > MAX_TOTAL_POINTS:
                raise BadQuery("group_by", f"group_by=offer would return {count} series; narrow the filters "
                               f"(gpu, provider, region, purchase, instance_type) or group by provider")  # fmt: skip
            by_id = {o.id: o for o in repo.matching_offers(conn, q)}
        mid = min(max(built_to or q.start, q.start), end)
        if end <= q.start or not sources:
            series: list[Series] = []
        elif q.step_s is None:
            series = _raw_series(conn, q, end, by_id)
        else:
            series = _bucket_series(conn, q, end, by_id, built_to)
        gaps, truncated = _gaps(conn, q, end, sources, intervals or {}, mid, _short_tail(q, built_to, mid, end))
    return HistoryResult(query=q, series=series, gaps=gaps, gaps_truncated=truncated)


def _raw_series(conn: Connection, q: HistoryQuery, end: datetime, by_id: dict[int, OfferRow]) -> list[Series]:
    out: dict[int, Series] = {}
    read = repo.Sql(conn).db.read_dt
    for offer_id, valid_from, _valid_to, price in repo.raw_rows(conn, q, end):
        t = read(valid_from)
        assert t is not None
        s = out.get(offer_id)
        if s is None:
            s = out[offer_id] = Series(offer_key(by_id[offer_id]), [])
        s.points.append((max(t, q.start), round(float(price), 8)))
    for s in out.values():
        if len(s.points) > MAX_POINTS:
            raise BadQuery("from", f"offer {s.key['offer_id']} changed price {len(s.points)} times in the range (at "
                           f"most {MAX_POINTS} with step=raw); shorten the range or use a step such as 1h")  # fmt: skip
    return list(out.values())


def _bucket_series(
    conn: Connection,
    q: HistoryQuery,
    end: datetime,
    by_id: dict[int, OfferRow],
    built_to: datetime | None,
) -> list[Series]:
    assert q.step_s is not None
    step, s0, e0 = q.step_s, int(q.start.timestamp()), int(end.timestamp())
    n = -(-(e0 - s0) // step)
    if built_to is None or not _rollup_applies(q):
        groups = accumulate(conn, q, s0, e0, step, n)
    else:
        groups = _from_rollup(conn, q, s0, e0, n, int(built_to.timestamp()))
    out = [Series(_group_key(q, g, by_id), _points(q, b)) for g, b in groups.items()]
    out = [s for s in out if s.points]
    out.sort(key=lambda s: [str(v) for v in s.key.values()])
    return out


def _rollup_applies(q: HistoryQuery) -> bool:
    return (
        q.step_s is not None
        and q.step_s % DAY == 0
        and set(q.group_by) <= set(repo.ROLLUP_GROUPS)
        and q.instance_type is None
        and q.region is None
        and q.offer_id is None
    )


def _short_tail(q: HistoryQuery, built_to: datetime | None, mid: datetime, end: datetime) -> bool:
    """The query's open tail [mid, end) starts at the roll-up's cut-off and is a day or so long: the prices in force
    at its start come from the stored cut-off, its withdrawals from the indexes on valid_to and valid_from."""
    return built_to is not None and mid == built_to and end - mid <= MAX_TAIL and _rollup_applies(q)


def _from_rollup(conn: Connection, q: HistoryQuery, s0: int, e0: int, n: int, built_s: int) -> dict[Any, Buckets]:
    """Closed days from the daily roll-up, the rest (today) from the intervals; both folded into the buckets. The
    prices in force at the roll-up's end come from its stored cut-off (``refresh`` wrote it with ``built_to``), so
    the open tail reads only what changed since, not every offer's price."""
    assert q.step_s is not None
    step = q.step_s
    mid = min(max(built_s, s0), e0)
    ng = len(q.group_by)
    groups: dict[tuple[Any, ...], Buckets] = {}

    def fold(g: tuple[Any, ...], day_s: int, mn: float, mx: float, ws: float, secs: int, last: float | None) -> None:
        k = (day_s - s0) // step
        b = groups.get(g)
        if b is None:
            b = groups[g] = Buckets(n)
        ends_bucket = min(day_s + DAY, e0) == min(s0 + (k + 1) * step, e0)
        b.fold(k, mn, mx, ws, secs, last if ends_bucket else None)

    if mid > s0:
        for row in repo.daily_rows(conn, q, s0 // DAY, mid // DAY):
            day, mn, mx, ws, secs, last = row[ng:]
            fold(tuple(row[:ng]), int(day) * DAY, float(mn), float(mx), float(ws), int(secs),
                 None if last is None else float(last))  # fmt: skip
    if e0 > mid:
        days = -(-(e0 - mid) // DAY)
        short = mid == built_s and e0 - mid <= MAX_TAIL.total_seconds()  # see _short_tail
        live = accumulate(conn, q, mid, e0, DAY, days, cutoff_day=mid // DAY if short else None)
        for g, b in live.items():
            for k, mn, mx, ws, secs, last in b.values():
                fold(g, mid + k * DAY, mn, mx, ws, secs, last)
    return groups


def _points(q: HistoryQuery, b: Buckets) -> list[tuple[datetime, float]]:
    assert q.step_s is not None
    points = []
    for k, mn, mx, ws, secs, last in b.values():
        value = {"min": mn, "max": mx, "avg": ws / secs, "last": last}[q.agg]
        if value is not None:
            points.append((q.start + timedelta(seconds=k * q.step_s), round(value, 8)))
    return points


def _group_key(q: HistoryQuery, g: tuple[Any, ...], by_id: dict[int, OfferRow]) -> dict[str, Any]:
    key: dict[str, Any] = {}
    for dim, value in zip(q.group_by, g, strict=True):
        if dim == "offer":
            key.update(offer_key(by_id[int(value)]))
        else:
            key[dim] = value
    return key


def source_thresholds(conn: Connection, sources: set[str], intervals: Mapping[str, float]) -> dict[str, int]:
    """Seconds without a poll that make a gap, per source: 2.5x its configured interval, else 2.5x the median
    spacing of its recent polls (sources that are not configured, e.g. a demo backfill)."""
    out = {}
    for source in sorted(sources):
        minutes = intervals.get(source)
        if minutes is None:
            times = repo.recent_poll_times(conn, source)
            spacing = [(a - b).total_seconds() for a, b in itertools.pairwise(times) if a > b]
            if not spacing:
                continue
            minutes = statistics.median(spacing) / 60
        out[source] = int(GAP_FACTOR * minutes * 60)
    return out


def _gaps(
    conn: Connection,
    q: HistoryQuery,
    end: datetime,
    sources: set[str],
    intervals: Mapping[str, float],
    mid: datetime,
    short_tail: bool,
) -> tuple[list[dict[str, Any]], bool]:
    """Before ``mid`` from the roll-up's records, after it from the live tables."""
    if end <= q.start or not sources:
        return [], False
    gaps: list[dict[str, Any]] = []
    thresholds = source_thresholds(conn, sources, intervals)
    polls: list[tuple[str, datetime | None, datetime | None]] = []
    withdrawn: list[tuple[int, datetime, datetime | None]] = []
    if mid > q.start:
        polls += repo.stored_gaps(conn, thresholds, q.start, mid)
        withdrawn += [w for w in repo.stored_withdrawals(conn, q, mid) if w[2] is None or w[2] > q.start]
    if end > mid:
        polls += repo.poll_gaps(conn, thresholds, mid, end)
        withdrawn += (repo.recent_withdrawals if short_tail else repo.withdrawn_periods)(conn, q, mid, end)
    for source, before, after in polls:
        gaps.append({"kind": "polling", "source": source, "from": _iso(max(before or q.start, q.start)),
                     "to": _iso(min(after or end, end)), "last_poll": _iso(before), "next_poll": _iso(after),
                     "seconds_allowed": thresholds[source]})  # fmt: skip
    by_id = {o.id: o for o in repo.offers_by_ids(conn, {w[0] for w in withdrawn})}
    for offer_id, gone, back in withdrawn:
        o = by_id[offer_id]
        gaps.append({"kind": "withdrawn", "offer_id": offer_id, "provider": o.provider, "region": o.region,
                     "instance_type": o.instance_type, "purchase": o.purchase, "source": o.source,
                     "from": _iso(max(gone, q.start)), "to": _iso(min(back or end, end))})  # fmt: skip
    gaps.sort(key=lambda g: (g["from"], g["kind"], g["source"]))
    return gaps[:MAX_GAPS], len(gaps) > MAX_GAPS


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat()
