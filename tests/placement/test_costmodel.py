from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import pytest

from broker.domain import ConfigError
from broker.placement import PlacementConfig
from broker.placement.costmodel import (
    daly_interval_h,
    estimate_run,
    wall_factor_floor,
    wall_hours,
    young_interval_h,
)


@pytest.mark.parametrize(("mtbf_h", "expected_min"), [(24.0, 116.7), (6.0, 56.7), (0.25, 9.1)])
def test_daly_interval_reproduces_the_papers_validation_cases(mtbf_h: float, expected_min: float) -> None:
    # Daly (2006) validation: C = 5 min; cost-models.md §3.1 quotes 117 / 57 / 9.1 min
    assert daly_interval_h(5 / 60, mtbf_h) * 60 == pytest.approx(expected_min, abs=0.05)


def test_daly_interval_limits() -> None:
    assert daly_interval_h(0.1, math.inf) == math.inf
    assert daly_interval_h(3.0, 1.0) == 1.0  # C >= 2M: checkpoint once per MTBF
    assert young_interval_h(5 / 60, 24) == pytest.approx(math.sqrt(2 * 5 / 60 * 24))


@pytest.mark.parametrize(
    ("rate", "write_min", "restart_min", "tau_min", "ratio", "breakeven"),
    [  # cost-models.md §3.4 break-even table, T = 100 h
        (0.05, 1, 10, 48, 1.051, 0.95),
        (0.1, 1, 10, 34, 1.078, 0.93),
        (0.3, 1, 10, 19, 1.164, 0.86),
        (0.5, 1, 10, 15, 1.240, 0.81),
        (0.5, 5, 15, 31, 1.535, 0.65),
        (1.0, 5, 15, 21, 1.990, 0.50),
    ],
)
def test_spot_break_even_table(
    rate: float, write_min: float, restart_min: float, tau_min: float, ratio: float, breakeven: float
) -> None:
    run = estimate_run(100, rate, rate, write_min / 60, restart_min / 60, None, 0.0, 0.0)
    assert run.interval_h * 60 == pytest.approx(tau_min, abs=1)
    assert run.wall_h / 100 == pytest.approx(ratio, abs=0.002)
    assert 100 / run.wall_h == pytest.approx(breakeven, abs=0.006)
    assert run.interruptions == pytest.approx(rate * run.wall_h)


def _simulate(work: float, rate: float, write: float, restart: float, tau: float, rng: random.Random) -> float:
    """One run under exponential failures: segments of tau work + a checkpoint; a failure (also during a restart)
    loses the segment in progress."""
    done, wall = 0.0, 0.0
    while done < work - 1e-12:
        seg = min(tau, work - done) + write
        while True:
            fail = rng.expovariate(rate)
            if fail >= seg:
                break
            wall += fail
            # restart, which can itself be interrupted
            while (f2 := rng.expovariate(rate)) < restart:
                wall += f2
            wall += restart
        wall += seg
        done += seg - write
    return wall


def test_wall_time_formula_matches_a_monte_carlo_run() -> None:
    rng = random.Random(7)
    work, rate, write, restart, tau = 10.0, 0.5, 5 / 60, 15 / 60, 0.5  # 20 segments exactly
    sims = [_simulate(work, rate, write, restart, tau, rng) for _ in range(6000)]
    mean = sum(sims) / len(sims)
    assert wall_hours(work, rate, write, restart, tau) == pytest.approx(mean, rel=0.02)


def test_wall_time_edge_cases() -> None:
    assert wall_hours(10, 0.0, 0.1, 0.2, math.inf) == 10
    assert wall_hours(10, 0.0, 0.1, 0.2, 1.0) == pytest.approx(11.0)  # only the checkpoint writes
    assert wall_hours(10, 0.5, 0.0, 0.2, 0.0) == pytest.approx(10 * math.exp(0.1))  # free continuous checkpoints
    assert wall_hours(10, 50.0, 1.0, 1.0, 30.0) == math.inf


def test_egress_tiers(cfg: PlacementConfig) -> None:
    # AWS marginal tiers: 1 GB free, then $0.09 to 10 TB, $0.085 to 50 TB
    assert cfg.egress_usd("aws", "us-east-1", "gcp", "us-central1", 20000) == pytest.approx(10239 * 0.09 + 9760 * 0.085)
    # GCP prices the whole volume at the tier it reaches
    assert cfg.egress_usd("gcp", "us-central1", "aws", "us-east-1", 2000) == pytest.approx(2000 * 0.11)
    assert cfg.egress_usd("aws", "us-east-1", "aws", "us-west-2", 100) == pytest.approx(2.0)
    assert cfg.egress_usd("aws", "us-east-1", "aws", "us-east-1", 100) == 0
    assert cfg.egress_usd("lambda", "us-east-1", "aws", "us-east-1", 100) == 0
    assert cfg.egress_usd("someplace", "x", "aws", "us-east-1", 100) == pytest.approx(9.0)  # default: never free


def test_jurisdictions(cfg: PlacementConfig) -> None:
    assert cfg.in_jurisdictions(cfg.country_of("aws", "eu-central-1"), ["EU"])
    assert not cfg.in_jurisdictions(cfg.country_of("aws", "eu-west-2"), ["EU"])  # London
    assert cfg.in_jurisdictions(cfg.country_of("aws", "eu-west-2"), ["GB"])
    assert cfg.in_jurisdictions(cfg.country_of("crusoe", "eu-iceland1-a"), ["EEA"])
    assert not cfg.in_jurisdictions(cfg.country_of("crusoe", "eu-iceland1-a"), ["EU"])
    assert cfg.in_jurisdictions(cfg.country_of("primeintellect", "DE"), ["EU"])
    assert cfg.in_jurisdictions(cfg.country_of("gcp", "us-east5"), ["US"])
    assert not cfg.in_jurisdictions(cfg.country_of("hyperbolic", "default"), ["US"])  # unmapped: never inside


def test_band_labels_compare_loosely(cfg: PlacementConfig) -> None:
    assert cfg.band_rate("< 5 %") == cfg.band_rate("<5%") == pytest.approx(0.10)
    assert cfg.band_rate(">20%") == pytest.approx(0.80)
    assert cfg.band_rate("unheard of") is None


def test_config_errors_name_the_setting(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "config"
    bad = tmp_path / "placement.toml"
    bad.write_text((root / "placement.toml").read_text().replace("gbps = 10", "gbps = -1"))
    with pytest.raises(ConfigError, match=r"transfer\.gbps"):
        PlacementConfig.load(bad, root / "egress.toml")
    bad.write_text("[interruption\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        PlacementConfig.load(bad, root / "egress.toml")
    with pytest.raises(ConfigError, match="not found"):
        PlacementConfig.load(tmp_path / "missing.toml", root / "egress.toml")
    egress = tmp_path / "egress.toml"
    egress.write_text("[default]\ninter_region_usd_per_gb = 0.02\ninternet = []\n")
    with pytest.raises(ConfigError, match=r"default\.internet"):
        PlacementConfig.load(root / "placement.toml", egress)


def _pooled(folder: Path) -> tuple[float, float]:
    """(reclaims per up-hour, mean minutes down after a reclaim) over 1-node traces."""
    events, up_h, downs = 0, 0.0, []
    for path in sorted(folder.glob("*.json")):
        trace = json.loads(path.read_text())
        gap, data = trace["metadata"]["gap_seconds"], trace["data"]
        up_h += sum(1 for v in data if v > 0) * gap / 3600
        run = None
        for a, b in itertools.pairwise(data):
            if a > 0 and b == 0:
                events += 1
                run = 1
            elif run is not None and b == 0:
                run += 1
            elif run is not None:
                downs.append(run * gap / 60)
                run = None
    return events / up_h, sum(downs) / len(downs)


def test_priors_agree_with_the_measured_spot_traces(cfg: PlacementConfig, shared_dir: Path) -> None:
    rate, wait = _pooled(shared_dir / "data" / "spot-traces" / "preemption" / "1-node" / "aws-04-22-2023")
    assert cfg.provider_rate("aws") == pytest.approx(rate, rel=0.05)
    assert cfg.placement.interruption.spot_wait_minutes == pytest.approx(wait, rel=0.05)
    # the band ladder spans the hazards measured per zone over 45 days (0.10-1.39/h)
    lo, hi = _pooled(shared_dir / "data" / "spot-traces" / "availability" / "1-node" / "aws-02-15-2023")[0], 1.39
    bands = sorted(cfg.placement.interruption.bands.values())
    assert bands[0] <= lo * 1.5 and bands[-1] <= hi


def test_wall_factor_floor_bounds_every_interval_from_below() -> None:
    # placement prunes with it: a floor above the real wall time would drop the cheapest option
    rng = random.Random(7)
    for _ in range(20_000):
        rate = 10 ** rng.uniform(-6, 1.3)
        write = rng.choice([0.0, rng.uniform(0, 2)])
        restart = rng.uniform(0, 1)
        tau = rng.choice([daly_interval_h(write, 1 / rate), 10 ** rng.uniform(-3, 2)])
        floor = wall_factor_floor(rate, write, restart)
        assert wall_hours(1.0, rate, write, restart, tau) >= floor * (1 - 1e-12)
        assert wall_factor_floor(rate * 1.5, write, restart) >= floor  # monotone: a class's lowest rate bounds it
    assert wall_factor_floor(0.0, 0.1, 0.2) == 1.0
    assert wall_factor_floor(0.3, 0.0, 0.25) == pytest.approx(math.exp(0.075))  # exact without checkpoint writes
    # close to the Young/Daly optimum it bounds (the pruning is only as good as this)
    assert wall_factor_floor(0.47, 5 / 60, 0.25) > 0.95 * wall_hours(
        1.0, 0.47, 5 / 60, 0.25, daly_interval_h(5 / 60, 1 / 0.47)
    )
