"""Folding step-function prices into buckets, from the per-bucket rows SQL returns (see ``bucket_rows``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection

from broker.history import repository as repo
from broker.history.schemas import HistoryQuery

Values = tuple[int, float, float, float, int, float | None]  # k, min, max, weighted sum, seconds, last


class Buckets:
    """Per-bucket accumulators of one series. ``ws``/``secs`` are difference arrays (a price in force over many
    buckets adds to all of them in O(1)); ``values`` turns them back into per-bucket figures."""

    __slots__ = ("last", "mn", "mx", "n", "ranges", "secs", "ws")

    def __init__(self, n: int) -> None:
        self.n = n
        self.mn: list[float | None] = [None] * n
        self.mx: list[float | None] = [None] * n
        self.ws = [0.0] * (n + 1)
        self.secs = [0] * (n + 1)
        self.last: list[float | None] = [None] * n
        self.ranges: list[tuple[int, int, float]] = []  # full buckets lo..hi of prices spanning 3+ buckets

    def fold(self, k: int, mn: float, mx: float, ws: float, secs: int, last: float | None) -> None:
        cur = self.mn[k]
        self.mn[k] = mn if cur is None or mn < cur else cur
        cur = self.mx[k]
        self.mx[k] = mx if cur is None or mx > cur else cur
        self.ws[k] += ws
        self.ws[k + 1] -= ws
        self.secs[k] += secs
        self.secs[k + 1] -= secs
        if last is not None:
            cur = self.last[k]
            self.last[k] = last if cur is None or last < cur else cur

    def spread(self, lo: int, hi: int, price: float, seconds: int) -> None:
        """``price`` in force through every bucket lo..hi, each ``seconds`` long."""
        if lo > hi:
            return
        self.ws[lo] += price * seconds
        self.ws[hi + 1] -= price * seconds
        self.secs[lo] += seconds
        self.secs[hi + 1] -= seconds
        self.ranges.append((lo, hi, price))

    def settle(self) -> None:
        """Fold the spread prices' min/max/last into their buckets (each bucket set once per side: union-find)."""
        if not self.ranges:
            return
        for k, v in _fill(self.n, self.ranges, lambda x: x):
            self.fold(k, v, v, 0.0, 0, v)  # a full bucket's price is in force at its end: it counts for "last"
        for k, v in _fill(self.n, self.ranges, lambda x: -x):
            self.fold(k, v, v, 0.0, 0, None)
        self.ranges = []

    def values(self) -> Iterator[Values]:
        self.settle()
        ws, secs = 0.0, 0
        for k in range(self.n):
            ws += self.ws[k]
            secs += self.secs[k]
            mn, mx = self.mn[k], self.mx[k]
            if secs > 0 and mn is not None and mx is not None:
                yield k, mn, mx, ws, secs, self.last[k]


def _fill(
    n: int, ranges: Sequence[tuple[int, int, float]], order: Callable[[float], float]
) -> Iterator[tuple[int, float]]:
    nxt = list(range(n + 1))

    def find(i: int) -> int:
        root = i
        while nxt[root] != root:
            root = nxt[root]
        while nxt[i] != root:
            nxt[i], i = root, nxt[i]
        return root

    for lo, hi, v in sorted(ranges, key=lambda r: order(r[2])):
        i = find(lo)
        while i <= hi:
            yield i, v
            nxt[i] = i + 1
            i = find(i + 1)


def accumulate(
    conn: Connection,
    q: HistoryQuery,
    start_s: int,
    end_s: int,
    step: int,
    n: int,
    unit: str | None = None,
    cutoff_day: int | None = None,
) -> dict[tuple[Any, ...], Buckets]:
    """Buckets [start_s + k*step, +step) for k < n, per group of ``q.group_by``, prices clipped to [start_s, end_s).
    ``cutoff_day``: ``start_s`` is the roll-up cut-off of that day, whose stored prices in force are read instead
    of every offer's (see ``repository.held_rows``)."""
    ng = len(q.group_by)
    groups: dict[tuple[Any, ...], Buckets] = {}
    if cutoff_day is not None:
        for row in repo.held_rows(conn, q, start_s, end_s, cutoff_day, unit):
            g = tuple(row[:ng])
            e_t, mn, mx, total, count = row[ng:]
            b = groups.get(g)
            if b is None:
                b = groups[g] = Buckets(n)
            add_held(b, float(mn), float(mx), float(total), int(count), start_s, int(e_t), end_s, step)
    for row in repo.bucket_rows(conn, q, start_s, end_s, step, unit, cutoff_day):
        g = tuple(row[:ng])
        k, mn, mx, ws, secs, last, e_f, e_t, many = row[ng:]
        b = groups.get(g)
        if b is None:
            b = groups[g] = Buckets(n)
        if not many:
            b.fold(int(k), float(mn), float(mx), float(ws), int(secs), None if last is None else float(last))
            continue
        # a price spanning 3+ buckets: its two edge buckets directly, the full ones between as a range
        add_interval(b, float(mn), int(e_f), int(e_t), start_s, end_s, step)
    return groups


def add_interval(b: Buckets, price: float, e_f: int, e_t: int, start_s: int, end_s: int, step: int) -> None:
    """One price in force over [e_f, e_t) (epoch seconds, already clipped to [start_s, end_s))."""
    k1, k2 = (e_f - start_s) // step, (e_t - 1 - start_s) // step
    at_end = e_t >= min(start_s + (k2 + 1) * step, end_s)
    if k1 == k2:
        b.fold(k1, price, price, price * (e_t - e_f), e_t - e_f, price if at_end else None)
        return
    first = start_s + (k1 + 1) * step - e_f
    b.fold(k1, price, price, price * first, first, price)
    tail = e_t - start_s - k2 * step
    b.fold(k2, price, price, price * tail, tail, price if at_end else None)
    b.spread(k1 + 1, k2 - 1, price, step)


def add_held(
    b: Buckets, mn: float, mx: float, total: float, count: int, start_s: int, e_t: int, end_s: int, step: int
) -> None:
    """``count`` prices (lowest ``mn``, highest ``mx``, summing to ``total``) each in force over [start_s, e_t), folded
    bucket by bucket (a tail after the roll-up: a bucket or two)."""
    for k in range((e_t - 1 - start_s) // step + 1):
        b_start = start_s + k * step
        secs = min(e_t, b_start + step) - b_start
        at_end = e_t >= min(b_start + step, end_s)
        b.fold(k, mn, mx, total * secs, count * secs, mn if at_end else None)
