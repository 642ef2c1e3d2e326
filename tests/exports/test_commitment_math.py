"""Known answers for the commitment level: brute force over the grid, flat and spiky traces, no usage."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from broker.exports import commitments as cm


def brute_force(series: list[float], rate: float, alt: float, step: float) -> float:
    """Every level from 0 to past the peak, costed hour by hour; the cheapest wins, the smaller on a tie."""
    best_level, best_cost = 0.0, None
    level = 0.0
    while level <= max(series, default=0.0) + step:
        cost = 0.0
        for u in series:
            cost += rate * level + alt * max(u - level, 0.0)
        if best_cost is None or cost < best_cost - 1e-9 * max(best_cost, 1.0):
            best_level, best_cost = level, cost
        level += step
    return best_level


@pytest.mark.parametrize("seed", range(12))
def test_recommended_level_equals_brute_force(seed: int) -> None:
    rnd = random.Random(seed)
    hours = rnd.choice([24, 100, 24 * 30])
    base = rnd.uniform(0, 40)
    series = [max(0.0, base + rnd.gauss(0, 10) + (rnd.random() < 0.1) * rnd.uniform(0, 60)) for _ in range(hours)]
    alt = rnd.uniform(1.5, 5.0)
    rate = alt * rnd.uniform(0.2, 1.1)  # discounts from 80 % down to none at all
    step = rnd.choice([1.0, 4.0, 8.0])
    got = cm.best_level(series, rate, alt, step)
    assert got.level == brute_force(series, rate, alt, step)


def test_level_is_the_discount_percentile_against_on_demand() -> None:
    series = [float(i) for i in range(1, 101)]  # 1..100 GPUs, one hour each
    got = cm.best_level(series, committed_rate=0.6, alt_rate=1.0, step=1.0)  # d = 40 %
    assert got.level == 40.0  # c* = F^-1(0.4)


def test_flat_trace_commits_fully() -> None:
    got = cm.best_level([32.0] * 720, committed_rate=2.0, alt_rate=3.0, step=8.0)
    assert got.level == 32.0
    assert (got.coverage, got.utilisation(720)) == (1.0, 1.0)
    assert got.saving == pytest.approx(720 * 32 * 1.0)


def test_spiky_trace_commits_to_its_base() -> None:
    series = [16.0] * 700 + [64.0] * 20  # a 16-GPU base with short bursts to 64
    got = cm.best_level(series, committed_rate=1.8, alt_rate=3.0, step=8.0)  # d = 40 %
    assert got.level == 16.0
    assert got.utilisation(len(series)) == 1.0
    assert got.coverage == pytest.approx(720 * 16 / (700 * 16 + 20 * 64))


def test_no_discount_or_no_usage_commits_nothing() -> None:
    assert cm.best_level([10.0] * 50, committed_rate=3.0, alt_rate=3.0, step=1.0).level == 0.0
    assert cm.best_level([0.0] * 50, committed_rate=1.0, alt_rate=3.0, step=1.0).level == 0.0
    assert cm.best_level([], committed_rate=1.0, alt_rate=3.0, step=1.0).level == 0.0


def test_hourly_usage_spreads_runs_over_the_hours_they_overlap() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    runs = [
        (t0 + timedelta(minutes=30), t0 + timedelta(hours=2, minutes=30), 16.0),  # 8 GPUs for two hours
        (t0 + timedelta(hours=3), t0 + timedelta(hours=3), 2.0),  # zero duration: counts in its hour
        (t0 - timedelta(hours=5), t0 - timedelta(hours=1), 40.0),  # before the window
    ]
    assert cm.hourly_usage(runs, t0, 4) == [4.0, 8.0, 4.0, 2.0]


def test_profile_percentiles_and_trend() -> None:
    series = [float(h) / 24 for h in range(24 * 60)]  # grows by one GPU a day
    p = cm.profile(series)
    assert p.slope_gpus_per_30_days == pytest.approx(30.0)
    assert p.direction == "growing"
    assert p.p50 == pytest.approx(cm.percentile(sorted(series), 0.5))
    assert (p.max, p.p10 < p.p50 < p.p90) == (series[-1], True)
    assert cm.profile([5.0] * 100).direction == "flat"
