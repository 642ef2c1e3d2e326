"""Commitment economics on an hourly usage series (shared/reference/cost-models.md §5.2, §5.3).

U_h is the average number of GPUs in use during hour h. Committing to c GPUs at r USD per GPU-hour, and paying the
alternative price p for whatever exceeds c, costs over the lookback of H hours

    cost(c) = r·c·H + p·Σ_h max(U_h - c, 0)

which is convex and piecewise linear in c, with slope r·H - p·#{h: U_h > c}. The smallest minimiser is the
(1 - r/p) quantile of U (the newsvendor critical fractile; against on-demand, the d-th percentile for discount d).
Commitments are bought in whole instances, so the level lives on a grid of ``step`` GPUs: the answer starts from
the grid points around the quantile and is settled by replaying the lookback (cost is convex, so walking downhill
from there reaches the global minimum; ties go to the smaller level, the cheaper mistake).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

HOUR = timedelta(hours=1)
_REL_TOL = 1e-9  # replay costs within this fraction of each other are ties


def hourly_usage(runs: Iterable[tuple[datetime, datetime, float]], start: datetime, hours: int) -> list[float]:
    """Average concurrent GPUs per hour of [start, start + hours) from (started, ended, GPU-hours) runs.

    A run's GPU-hours spread evenly over its duration; a run of zero duration counts in the hour it started.
    """
    series = [0.0] * hours
    end = start + hours * HOUR
    for began, ended, gpu_hours in runs:
        if gpu_hours <= 0:
            continue
        duration_h = (ended - began).total_seconds() / 3600
        if duration_h <= 0:
            if start <= began < end:
                series[int((began - start) / HOUR)] += gpu_hours
            continue
        gpus = gpu_hours / duration_h
        lo, hi = max(began, start), min(ended, end)
        if hi <= lo:
            continue
        first = int((lo - start) / HOUR)
        last = min(math.ceil((hi - start) / HOUR), hours)
        for h in range(first, last):
            b0 = start + h * HOUR
            overlap = (min(hi, b0 + HOUR) - max(lo, b0)).total_seconds() / 3600
            if overlap > 0:
                series[h] += gpus * overlap
    return series


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 1]."""
    if not sorted_values:
        return 0.0
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Profile:
    hours: int
    mean: float
    p10: float
    p50: float
    p90: float
    max: float
    slope_gpus_per_30_days: float  # least-squares trend
    first_half_mean: float
    second_half_mean: float

    @property
    def direction(self) -> str:
        """growing / shrinking when the fitted trend moves usage by more than 10 % of its mean over the lookback."""
        if self.mean <= 0:
            return "none"
        change = self.slope_gpus_per_30_days * (self.hours / (30 * 24))
        if change > 0.1 * self.mean:
            return "growing"
        if change < -0.1 * self.mean:
            return "shrinking"
        return "flat"


def profile(series: Sequence[float]) -> Profile:
    n = len(series)
    s = sorted(series)
    mean = sum(series) / n if n else 0.0
    slope = 0.0
    if n > 1:
        x_mean = (n - 1) / 2
        sxx = sum((i - x_mean) ** 2 for i in range(n))
        slope = sum((i - x_mean) * (u - mean) for i, u in enumerate(series)) / sxx
    half = n // 2
    return Profile(
        hours=n,
        mean=mean,
        p10=percentile(s, 0.10),
        p50=percentile(s, 0.50),
        p90=percentile(s, 0.90),
        max=s[-1] if s else 0.0,
        slope_gpus_per_30_days=slope * 24 * 30,
        first_half_mean=sum(series[:half]) / half if half else mean,
        second_half_mean=sum(series[half:]) / (n - half) if n - half else mean,
    )


@dataclass(frozen=True, slots=True)
class Replay:
    level: float  # committed GPUs
    cost_without: float  # everything at the alternative price
    cost_with: float  # commitment (paid every hour) + overflow at the alternative price
    covered_gpu_hours: float
    total_gpu_hours: float

    @property
    def saving(self) -> float:
        return self.cost_without - self.cost_with

    @property
    def saving_share(self) -> float:
        return self.saving / self.cost_without if self.cost_without > 0 else 0.0

    @property
    def coverage(self) -> float:
        """Share of the GPU-hours used that the commitment covered."""
        return self.covered_gpu_hours / self.total_gpu_hours if self.total_gpu_hours > 0 else 0.0

    def utilisation(self, hours: int) -> float:
        """Share of the committed GPU-hours that were used."""
        bought = self.level * hours
        return self.covered_gpu_hours / bought if bought > 0 else 0.0


def replay(series: Sequence[float], level: float, committed_rate: float, alt_rate: float) -> Replay:
    covered = sum(min(u, level) for u in series)
    total = sum(series)
    commit = committed_rate * level * len(series)
    return Replay(level, alt_rate * total, commit + alt_rate * (total - covered), covered, total)


def critical_level(series: Sequence[float], committed_rate: float, alt_rate: float) -> float:
    """The smallest continuous minimiser of cost(c): the (1 - r/p) quantile of hourly usage (0 when r >= p)."""
    if not series or alt_rate <= 0 or committed_rate >= alt_rate:
        return 0.0
    s = sorted(series)
    k = math.ceil(len(s) * (1 - committed_rate / alt_rate) - 1e-9)  # rank of the quantile, 1-based
    return s[k - 1] if k >= 1 else 0.0


def best_level(series: Sequence[float], committed_rate: float, alt_rate: float, step: float) -> Replay:
    """The cost-minimising commitment on the grid {0, step, 2·step, ...}, checked by replay."""
    if step <= 0:
        raise ValueError("step must be > 0")
    top = math.ceil(max(series, default=0.0) / step - 1e-12)  # no point committing above the peak
    start = min(math.floor(critical_level(series, committed_rate, alt_rate) / step + 1e-12), top)

    def cost(i: int) -> Replay:
        return replay(series, i * step, committed_rate, alt_rate)

    def better(a: Replay, b: Replay) -> bool:  # a strictly cheaper than b, beyond rounding
        return a.cost_with < b.cost_with - _REL_TOL * max(abs(b.cost_with), 1.0)

    i, here = start, cost(start)
    while i < top and better(nxt := cost(i + 1), here):  # uphill in level while cost falls
        i, here = i + 1, nxt
    while i > 0 and not better(here, prev := cost(i - 1)):  # downhill while no dearer: the smallest minimiser
        i, here = i - 1, prev
    return here
