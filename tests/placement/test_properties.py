"""Property tests: on random small universes the pruned search agrees with evaluating every offer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.domain import Availability
from broker.gpus import GpuCatalog
from broker.placement import Infeasible, PlacementConfig, evaluate_all, place
from tests.placement.conftest import NOW, index, offer, request

PROVIDERS = ["aws", "gcp", "lambda", "crusoe"]
REGIONS = ["us-east-1", "eu-central-1", "eu-west-2", "us-central1"]
MODELS = [("A100-80GB", 8), ("H100-SXM", 8), ("L4", 1), ("H100-PCIE", 2)]
PURCHASES = ["on_demand", "spot", "spot", "reserved"]


@st.composite
def universes(draw: st.DrawFn) -> list[Any]:
    n = draw(st.integers(min_value=0, max_value=25))
    out = []
    for _ in range(n):
        model, gpus = draw(st.sampled_from(MODELS))
        attrs: dict[str, Any] = draw(
            st.sampled_from(
                [
                    {},
                    {"interruption_rate_per_hour": 0.05},
                    {"interruption_rate_per_hour": 2.0},
                    {"interruption_band": "5-10%"},
                    {"held_commitment": True},
                    {"interconnect": "infiniband"},
                ]
            )
        )
        out.append(
            offer(
                draw(st.sampled_from(PROVIDERS)),
                draw(st.sampled_from(REGIONS)),
                f"t{gpus}",
                draw(st.sampled_from(PURCHASES)),
                gpu=model,
                gpus=gpus,
                hourly=draw(st.floats(min_value=0.2, max_value=60)),
                age_minutes=draw(st.sampled_from([1, 40, 300])),
                availability=draw(st.sampled_from(list(Availability))),
                attrs=attrs,
                known=draw(st.integers(min_value=0, max_value=5)) > 0,
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
        constraints["jurisdictions"] = [draw(st.sampled_from(["EU", "US", "GB"]))]
    if draw(st.booleans()):
        constraints["max_hourly_usd"] = str(draw(st.integers(min_value=1, max_value=80)))
    if draw(st.booleans()):
        constraints["max_price_age_minutes"] = draw(st.sampled_from([30, 120]))
    if draw(st.booleans()):
        constraints["deadline_hours"] = draw(st.sampled_from([6, 12, 40]))
    constraints["require_available"] = draw(st.booleans())
    return {
        "gpu": {
            "count": draw(st.sampled_from([1, 2, 8, 16])),
            "models": draw(st.sampled_from([[], ["A100-80GB"], ["H100"], ["L4", "A100"]])),
        },
        "workload": draw(st.sampled_from(["training", "inference"])),
        "data": draw(st.sampled_from([None, {"location": "aws:us-east-1", "size_gb": 5000}])),
        "constraints": constraints,
        "alternatives": draw(st.integers(min_value=0, max_value=4)),
        "interconnect": draw(st.sampled_from([None, "infiniband"])),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offers=universes(), fields=jobs())
def test_choice_is_cheapest_feasible_and_respects_constraints(
    offers: list[Any], fields: dict[str, Any], catalog: GpuCatalog, cfg: PlacementConfig
) -> None:
    job = request(**fields)
    idx = index(*offers, max_age={"aws": timedelta(hours=2)})
    everything = evaluate_all(job, idx, catalog, cfg, NOW)
    if not everything:
        with pytest.raises(Infeasible) as err:
            place(job, idx, catalog, cfg, NOW)
        assert sum(err.value.rejected.values()) == len(offers)  # nothing feasible: every offer is accounted for
        return
    d = place(job, idx, catalog, cfg, NOW)
    assert everything, "place found an option that evaluating everything did not"
    chosen = [d.choice, *d.alternatives]
    assert d.choice.expected_cost_usd <= min(o.expected_cost_usd for o in everything)
    assert [o.expected_cost_usd for o in chosen] == [o.expected_cost_usd for o in everything[: len(chosen)]]
    assert len(d.alternatives) == min(job.alternatives, len(everything) - 1)
    by_id = {o.offer_id: o for o in offers}
    c = job.constraints
    for opt in chosen:
        src = by_id[opt.offer_id]
        assert src.gpu_known
        assert not c.providers or opt.provider in c.providers
        assert opt.provider not in c.exclude_providers
        if c.jurisdictions:
            assert cfg.in_jurisdictions(cfg.country_of(opt.provider, opt.region), c.jurisdictions)
        if c.max_hourly_usd is not None:
            assert opt.hourly_usd <= c.max_hourly_usd
        if c.deadline_hours is not None:
            assert opt.expected_makespan_hours <= c.deadline_hours
        age = NOW - src.last_confirmed_at
        assert c.max_price_age_minutes is None or age <= timedelta(minutes=c.max_price_age_minutes)
        assert src.source != "aws" or age <= timedelta(hours=2)
        assert src.availability is not Availability.UNAVAILABLE
        assert not c.require_available or src.availability is Availability.AVAILABLE
        assert job.spot_allowed or opt.purchase != "spot"
        assert opt.purchase != "reserved" or src.attrs.get("held_commitment") is True
        if opt.nodes > 1 and job.interconnect is not None:
            assert src.attrs.get("interconnect") == "infiniband"
        b = opt.breakdown
        assert b.compute + b.interruptions + b.egress + b.checkpoint_storage == opt.expected_cost_usd
