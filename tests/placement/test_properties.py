"""Property tests: on random universes the pruned, grouped search (``place``) picks exactly what evaluating every
offer one by one (``evaluate_all``) ranks first, and accounts for every offer."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.domain import Availability
from broker.gpus import GpuCatalog
from broker.offers.index import IndexedOffer
from broker.placement import Decision, Infeasible, PlacementConfig, PlaceRequest, evaluate_all, place
from broker.placement.costmodel import estimate_run
from tests.placement.conftest import NOW, index, offer, request

PROVIDERS = ["aws", "gcp", "lambda", "crusoe"]
REGIONS = ["us-east-1", "eu-central-1", "eu-west-2", "us-central1"]
MODELS = ["A100-80GB", "H100-SXM", "L4", "H100-PCIE", "GH200"]
PURCHASES = ["on_demand", "spot", "spot", "reserved", "savings_plan"]
ATTRS: list[dict[str, Any]] = [
    {},
    {"interruption_rate_per_hour": 0.05},
    {"interruption_rate_per_hour": 0.4},
    {"interruption_rate_per_hour": 2.0},
    {"interruption_band": "5-10%"},
    {"interruption_band": ">20%"},
    {"held_commitment": True},
    {"held_commitment": True, "unused_quantity": 1},
    {"interconnect": "infiniband", "network_gbps": 400},
    {"arch": "arm64"},
]


@st.composite
def universes(draw: st.DrawFn) -> list[IndexedOffer]:
    n = draw(st.integers(min_value=0, max_value=30))
    out = []
    for _ in range(n):
        gpus = draw(st.sampled_from([1, 2, 4, 8]))
        out.append(
            offer(
                draw(st.sampled_from(PROVIDERS)),
                draw(st.sampled_from(REGIONS)),
                f"t{gpus}",
                draw(st.sampled_from(PURCHASES)),
                gpu=draw(st.sampled_from(MODELS)),
                gpus=gpus,
                hourly=draw(st.floats(min_value=0.2, max_value=60)),
                age_minutes=draw(st.sampled_from([1, 40, 300])),
                availability=draw(st.sampled_from(list(Availability))),
                attrs=draw(st.sampled_from(ATTRS)),
                known=draw(st.integers(min_value=0, max_value=5)) > 0,
                available_quantity=draw(st.sampled_from([None, None, 0, 1, 4])),
                vcpus=draw(st.sampled_from([None, 8.0, 96.0])),
            )
        )
    return out


@st.composite
def jobs(draw: st.DrawFn) -> dict[str, Any]:
    constraints: dict[str, Any] = {}
    if draw(st.booleans()):
        constraints["providers"] = draw(st.lists(st.sampled_from(PROVIDERS), min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):
        constraints["exclude_providers"] = [draw(st.sampled_from(PROVIDERS))]
    if draw(st.booleans()):
        constraints["regions"] = draw(st.lists(st.sampled_from(REGIONS), min_size=1, max_size=2, unique=True))
    if draw(st.booleans()):
        constraints["jurisdictions"] = [draw(st.sampled_from(["EU", "US", "GB"]))]
    if draw(st.booleans()):
        constraints["max_hourly_usd"] = str(draw(st.integers(min_value=1, max_value=80)))
    if draw(st.booleans()):
        constraints["max_total_usd"] = str(draw(st.integers(min_value=20, max_value=2000)))
    if draw(st.booleans()):
        constraints["max_price_age_minutes"] = draw(st.sampled_from([30, 120]))
    if draw(st.booleans()):
        constraints["deadline_hours"] = draw(st.sampled_from([4, 6, 12, 40]))
    constraints["require_available"] = draw(st.booleans())
    held = draw(
        st.sampled_from(
            [[], [{"provider": "aws"}], [{"provider": "gcp", "purchase": "reserved", "unused_instances": 1}]]
        )
    )
    return {
        "gpu": {
            "count": draw(st.sampled_from([1, 2, 8, 16])),
            "models": draw(st.sampled_from([[], ["A100-80GB"], ["H100"], ["L4", "A100"], ["GH200", "H100-SXM"]])),
        },
        "arch": draw(st.sampled_from(["x86_64", "x86_64", "arm64"])),
        "workload": draw(st.sampled_from(["training", "inference", "batch"])),
        "interruptible": draw(st.sampled_from([None, True])),
        "work": {"hours": draw(st.sampled_from([1, 10, 30])), "speedups": draw(st.sampled_from([{}, {"L4": 0.5}]))},
        "checkpoint": draw(st.sampled_from([{}, {"interval_minutes": 45}, {"write_minutes": 0, "size_gb": 50}])),
        "data": draw(
            st.sampled_from(
                [None, {"location": "aws:us-east-1", "size_gb": 5000}, {"location": "gcp:us-central1", "size_gb": 300}]
            )
        ),
        "cpus": draw(st.sampled_from([None, 32])),
        "constraints": constraints,
        "held_commitments": held,
        "alternatives": draw(st.integers(min_value=0, max_value=4)),
        "interconnect": draw(st.sampled_from([None, "infiniband"])),
    }


def _check(job: PlaceRequest, offers: list[IndexedOffer], catalog: GpuCatalog, cfg: PlacementConfig) -> Decision | None:
    """place() against evaluate_all(): same options in the same order, every offer accounted for."""
    idx = index(*offers, max_age={"aws": timedelta(hours=2)})
    everything = evaluate_all(job, idx, catalog, cfg, NOW)
    if not everything:
        with pytest.raises(Infeasible) as err:
            place(job, idx, catalog, cfg, NOW)
        assert sum(err.value.rejected.values()) + err.value.not_examined == len(offers)
        if job.constraints.max_total_usd is None:
            assert err.value.not_examined == 0  # nothing feasible, no budget: every offer examined or ruled out
        return None
    d = place(job, idx, catalog, cfg, NOW)
    chosen = [d.choice, *d.alternatives]
    # (cost, makespan, offer id) is a total order: the pruned search finds exactly the same leaders
    assert [o.offer_id for o in chosen] == [o.offer_id for o in everything[: len(chosen)]]
    assert [o.expected_cost_usd for o in chosen] == [o.expected_cost_usd for o in everything[: len(chosen)]]
    assert d.choice.expected_cost_usd == min(o.expected_cost_usd for o in everything)
    assert len(d.alternatives) == min(job.alternatives, len(everything) - 1)
    assert min(d.rejected.values()) >= 0 and d.not_examined >= 0 and len(chosen) <= d.feasible <= d.examined
    assert sum(d.rejected.values()) + d.feasible + d.not_examined == len(offers)
    assert d.feasible <= len(everything)
    return d


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offers=universes(), fields=jobs())
def test_choice_is_cheapest_feasible_and_respects_constraints(
    offers: list[IndexedOffer], fields: dict[str, Any], catalog: GpuCatalog, cfg: PlacementConfig
) -> None:
    job = request(**fields)
    d = _check(job, offers, catalog, cfg)
    if d is None:
        return
    by_id = {o.offer_id: o for o in offers}
    c = job.constraints
    for opt in [d.choice, *d.alternatives]:
        src = by_id[opt.offer_id]
        assert src.gpu_known
        assert not c.providers or opt.provider in c.providers
        assert opt.provider not in c.exclude_providers
        assert not c.regions or opt.region in c.regions
        if c.jurisdictions:
            assert cfg.in_jurisdictions(cfg.country_of(opt.provider, opt.region), c.jurisdictions)
        if c.max_hourly_usd is not None:
            assert opt.hourly_usd <= c.max_hourly_usd
        if c.max_total_usd is not None:
            assert opt.expected_cost_usd <= c.max_total_usd + 1  # the limit is applied before rounding to 1e-4
        if c.deadline_hours is not None:
            assert opt.expected_makespan_hours <= c.deadline_hours
        age = NOW - src.last_confirmed_at
        assert c.max_price_age_minutes is None or age <= timedelta(minutes=c.max_price_age_minutes)
        assert src.source != "aws" or age <= timedelta(hours=2)
        assert src.availability is not Availability.UNAVAILABLE
        assert not c.require_available or src.availability is Availability.AVAILABLE
        assert src.available_quantity is None or src.available_quantity >= opt.nodes
        assert job.spot_allowed or opt.purchase != "spot"
        if opt.purchase in ("reserved", "savings_plan"):
            held = src.attrs.get("held_commitment") is True
            assert held or any(h.provider == opt.provider for h in job.held_commitments)
        if opt.nodes > 1 and job.interconnect is not None:
            assert src.attrs.get("interconnect") == "infiniband"
        b = opt.breakdown
        assert b.compute + b.interruptions + b.egress + b.checkpoint_storage == opt.expected_cost_usd


def _market(rng: random.Random, n: int) -> list[IndexedOffer]:
    """A denser universe than hypothesis draws: many offers per group, so that the bounds really prune."""
    providers = {**dict.fromkeys(PROVIDERS, REGIONS), "azure": ["westeurope", "eastus"]}
    out = []
    for _ in range(n):
        provider = rng.choice(list(providers))
        purchase = rng.choice(["on_demand", "spot", "spot", "reserved"])
        gpus = rng.choice([1, 2, 4, 8])
        attrs: dict[str, Any] = {}
        if purchase == "spot" and rng.random() < 0.5:
            attrs["interruption_rate_per_hour"] = rng.uniform(0.01, 2.5)
        elif purchase == "spot" and rng.random() < 0.5:
            attrs["interruption_band"] = rng.choice(["<5%", "5-10%", "10-15%", "15-20%", ">20%"])
        out.append(
            offer(
                provider,
                rng.choice(providers[provider]),
                f"t{gpus}",
                purchase,
                gpu=rng.choice(MODELS),
                gpus=gpus,
                hourly=round(gpus * rng.uniform(0.3, 5.0), 4),
                age_minutes=rng.expovariate(1 / 50),
                availability=rng.choice(list(Availability)),
                attrs=attrs,
            )
        )
    return out


@pytest.mark.parametrize("seed", range(6))
def test_pruned_search_matches_evaluating_everything_on_a_dense_market(
    seed: int, catalog: GpuCatalog, cfg: PlacementConfig
) -> None:
    rng = random.Random(seed)
    offers = _market(rng, 1500)
    cases: list[dict[str, Any]] = [
        {"gpu": {"count": 8, "models": []}},
        {"gpu": {"count": 1, "models": ["H100"]}, "data": {"location": "aws:us-east-1", "size_gb": 2000}},
        {"gpu": {"count": 16, "models": []}, "constraints": {"jurisdictions": ["EU"], "deadline_hours": 30}},
        {"gpu": {"count": 2, "models": ["A100", "L4"]}, "workload": "inference", "alternatives": 20},
        {"gpu": {"count": 8, "models": []}, "constraints": {"require_available": True, "max_total_usd": "900"}},
    ]
    for fields in cases:
        d = _check(request(**fields), offers, catalog, cfg)
        if d is not None and seed == 0:
            assert d.not_examined > 0 and d.examined < len(offers) // 10  # the bounds did prune


@pytest.mark.parametrize("count", [8, 16])
def test_near_ties_are_not_pruned(count: int, catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    # hundreds of on-demand and spot offers within 0.5% of each other in expected cost: a bound even slightly
    # above the true cost of either kind would reorder the walk and drop some of them
    rng = random.Random(count)
    nodes = count // 8
    hw = nodes * 8 * cfg.placement.interruption.hardware_failure_rate_per_gpu_hour
    on_demand = estimate_run(1.0, hw, 0.0, 5 / 60, 0.25, None, 0.0, 0.0).wall_h
    spot = estimate_run(1.0, nodes * 0.3 + hw, nodes * 0.3, 5 / 60, 0.25, None, 0.0, 0.0).wall_h
    offers = []
    for _ in range(400):
        is_spot = rng.random() < 0.5
        per_gpu = rng.uniform(2.5, 2.5125) / (spot if is_spot else on_demand)
        offers.append(
            offer(
                rng.choice(PROVIDERS),
                rng.choice(REGIONS),
                "p4d.24xlarge",
                "spot" if is_spot else "on_demand",
                hourly=8 * per_gpu,
                attrs={"interruption_rate_per_hour": 0.3} if is_spot else {},
            )
        )
    for alternatives in [30, 12]:
        d = _check(request(gpu={"count": count}, alternatives=alternatives), offers, catalog, cfg)
        assert d is not None and d.not_examined > 0
        kinds = {o.purchase for o in [d.choice, *d.alternatives]}
        assert kinds == {"spot", "on_demand"}  # the leaders interleave both kinds
