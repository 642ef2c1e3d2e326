from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import msgspec
import pytest
from pydantic import ValidationError

from broker.domain import Availability
from broker.gpus import GpuCatalog, UnknownGpu
from broker.placement import Infeasible, PlacementConfig, evaluate_all, place
from tests.placement.conftest import NOW, index, offer, request


def test_spot_wins_at_low_interruption_rates_and_loses_at_high_ones(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    od = offer(hourly=20.0)
    calm = offer(purchase="spot", hourly=8.0, attrs={"interruption_rate_per_hour": 0.05})
    stormy = offer(purchase="spot", hourly=8.0, attrs={"interruption_rate_per_hour": 5.0})
    assert place(request(), index(od, calm), catalog, cfg, NOW).choice.offer_id == calm.offer_id
    decision = place(request(), index(od, stormy), catalog, cfg, NOW)
    assert decision.choice.offer_id == od.offer_id
    spot = decision.alternatives[0]
    assert spot.purchase == "spot" and spot.expected_interruptions > 10
    assert spot.breakdown.interruptions > 0


def test_band_and_provider_prior_set_the_rate(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    banded = offer(purchase="spot", hourly=8.0, attrs={"interruption_band": ">20%"})
    plain = offer(provider="gcp", region="us-central1", purchase="spot", hourly=8.0)
    d = place(request(), index(banded, plain), catalog, cfg, NOW)
    rates = {o.offer_id: o.interruption_rate_per_hour for o in [d.choice, *d.alternatives]}
    hw = 8 * cfg.placement.interruption.hardware_failure_rate_per_gpu_hour
    assert rates[banded.offer_id] == pytest.approx(0.80 + hw)
    assert rates[plain.offer_id] == pytest.approx(cfg.placement.interruption.default_rate_per_hour + hw)


def test_gang_rate_scales_with_nodes(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    spot = offer(purchase="spot", hourly=8.0, attrs={"interruption_rate_per_hour": 0.1})
    d = place(request(gpu={"count": 24}), index(spot), catalog, cfg, NOW)
    assert d.choice.nodes == 3
    hw = 24 * cfg.placement.interruption.hardware_failure_rate_per_gpu_hour
    assert d.choice.interruption_rate_per_hour == pytest.approx(0.3 + hw)
    assert d.choice.hourly_usd == Decimal("24.0")


def test_large_far_data_flips_the_choice_through_egress(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    near = offer("aws", "us-east-1", hourly=20.0)
    far = offer("gcp", "us-central1", "a2-ultragpu-8g", hourly=18.0)
    small = request(data={"location": "aws:us-east-1", "size_gb": 10})
    big = request(data={"location": "aws:us-east-1", "size_gb": 50_000})
    assert place(small, index(near, far), catalog, cfg, NOW).choice.offer_id == far.offer_id
    d = place(big, index(near, far), catalog, cfg, NOW)
    assert d.choice.offer_id == near.offer_id
    assert d.alternatives[0].breakdown.egress == Decimal("4301.1100")  # 10239 GB at 0.09 + 39760 GB at 0.085
    assert d.alternatives[0].expected_makespan_hours > d.alternatives[0].expected_hours  # 50 TB at 10 Gbps


def test_faster_gpu_wins_when_its_price_per_unit_of_work_is_lower(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    a100 = offer(hourly=8 * 2.0)
    h100_cheap = offer(instance_type="p5.48xlarge", gpu="H100-SXM", hourly=8 * 4.0)  # 4/2.93 < 2 per A100-hour
    h100_dear = offer(instance_type="p5.48xlarge", gpu="H100-SXM", hourly=8 * 7.0)  # 7/2.93 > 2
    job = request(gpu={"count": 8, "models": ["A100", "H100"]})
    d = place(job, index(a100, h100_cheap), catalog, cfg, NOW)
    assert d.choice.offer_id == h100_cheap.offer_id
    assert d.choice.work_hours == pytest.approx(10 / 2.93, rel=1e-3)
    assert place(job, index(a100, h100_dear), catalog, cfg, NOW).choice.offer_id == a100.offer_id
    # a measured speedup overrides the catalog's ratio
    slow = request(gpu={"count": 8, "models": ["A100", "H100"]}, work={"speedups": {"H100-SXM": 1.5}})
    assert place(slow, index(a100, h100_cheap), catalog, cfg, NOW).choice.offer_id == a100.offer_id


def test_inference_stays_off_spot_unless_interruptible(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    od = offer(hourly=20.0)
    spot = offer(purchase="spot", hourly=4.0, attrs={"interruption_rate_per_hour": 0.05})
    d = place(request(workload="inference"), index(od, spot), catalog, cfg, NOW)
    assert d.choice.offer_id == od.offer_id and d.rejected["constraint"] == 1
    d = place(request(workload="inference", interruptible=True), index(od, spot), catalog, cfg, NOW)
    assert d.choice.offer_id == spot.offer_id
    assert d.choice.checkpoint_interval_minutes is None  # serving has no checkpoints: only restarts cost time
    d = place(request(interruptible=False), index(od, spot), catalog, cfg, NOW)
    assert d.choice.offer_id == od.offer_id


def test_stale_unknown_unavailable_and_wrong_offers_are_never_chosen(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    good = offer(hourly=30.0, source="aws")
    stale_by_source = offer(hourly=1.0, source="aws", age_minutes=200)
    stale_by_request = offer(hourly=2.0, source="lambda", age_minutes=50)
    unknown = offer(hourly=1.0, gpu="Mystery-GPU", known=False)
    sold_out = offer(hourly=1.0, availability=Availability.UNAVAILABLE)
    too_few = offer(hourly=1.0, available_quantity=0)
    wrong = offer(hourly=1.0, gpu="L4", gpus=8)
    idx = index(
        good, stale_by_source, stale_by_request, unknown, sold_out, too_few, wrong, max_age={"aws": timedelta(hours=2)}
    )
    d = place(request(constraints={"max_price_age_minutes": 30}), idx, catalog, cfg, NOW)
    assert d.choice.offer_id == good.offer_id and not d.alternatives
    assert d.rejected == {
        "wrong_gpu": 2,
        "not_portable": 0,
        "constraint": 0,
        "stale_price": 2,
        "unavailable": 2,
        "over_budget": 0,
        "misses_deadline": 0,
    }


def test_unknown_availability_is_refused_only_on_request(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    maybe = offer(hourly=10.0, availability=Availability.UNKNOWN)
    sure = offer(hourly=20.0)
    assert place(request(), index(maybe, sure), catalog, cfg, NOW).choice.offer_id == maybe.offer_id
    d = place(request(constraints={"require_available": True}), index(maybe, sure), catalog, cfg, NOW)
    assert d.choice.offer_id == sure.offer_id and d.rejected["unavailable"] == 1


def test_constraints(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    frankfurt = offer("aws", "eu-central-1", hourly=30.0)
    london = offer("aws", "eu-west-2", hourly=20.0)
    virginia = offer("aws", "us-east-1", hourly=10.0)
    lam = offer("lambda", "us-east-1", "gpu_8x_a100_80gb_sxm4", hourly=9.0)
    idx = index(frankfurt, london, virginia, lam)
    assert place(request(constraints={"jurisdictions": ["EU"]}), idx, catalog, cfg, NOW).choice.offer_id == (
        frankfurt.offer_id
    )
    assert place(request(constraints={"providers": ["aws"]}), idx, catalog, cfg, NOW).choice.offer_id == (
        virginia.offer_id
    )
    assert (
        place(
            request(constraints={"exclude_providers": ["lambda"], "regions": ["eu-west-2", "eu-central-1"]}),
            idx,
            catalog,
            cfg,
            NOW,
        ).choice.offer_id
        == london.offer_id
    )
    d = place(request(constraints={"max_hourly_usd": "15"}), idx, catalog, cfg, NOW)
    assert {o.offer_id for o in [d.choice, *d.alternatives]} == {virginia.offer_id, lam.offer_id}
    assert d.rejected["over_budget"] == 2


def test_budget_and_deadline(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    od = offer(hourly=20.0)
    spot = offer(purchase="spot", hourly=6.0, attrs={"interruption_rate_per_hour": 1.0})
    d = place(request(), index(od, spot), catalog, cfg, NOW)
    assert d.choice.offer_id == spot.offer_id and d.choice.expected_makespan_hours > 11
    d = place(request(constraints={"deadline_hours": 11}), index(od, spot), catalog, cfg, NOW)
    assert d.choice.offer_id == od.offer_id and d.rejected["misses_deadline"] == 1
    with pytest.raises(Infeasible) as err:
        place(request(constraints={"max_total_usd": "50"}), index(od, spot), catalog, cfg, NOW)
    # both cost over the budget at their lowest bound: skipped unexamined, and the answer says so
    assert err.value.not_examined == 2 and sum(err.value.rejected.values()) == 0
    assert "2 more cost over max_total_usd" in str(err.value)
    tight = request(constraints={"max_total_usd": "117"})  # spot: bound $115.6 fits, expected $119.4 does not
    with pytest.raises(Infeasible) as err:
        place(tight, index(od, spot), catalog, cfg, NOW)
    assert err.value.rejected["over_budget"] == 1 and err.value.not_examined == 1


def test_portability(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    gh200 = offer("lambda", "us-east-1", "gpu_1x_gh200", gpu="GH200", gpus=1, hourly=1.0)
    h100 = offer("lambda", "us-east-1", "gpu_1x_h100_pcie", gpu="H100-PCIE", gpus=1, hourly=3.0)
    mi300 = offer("crusoe", "us-east1-a", "mi300x.1x", gpu="MI300X", gpus=1, hourly=0.5)
    idx = index(gh200, h100, mi300)
    job = request(
        gpu={"count": 1, "models": [], "min_memory_gb": 80, "vendor": "nvidia"}, work={"reference_gpu": "H100-SXM"}
    )
    d = place(job, idx, catalog, cfg, NOW)
    assert d.choice.offer_id == h100.offer_id and d.rejected["not_portable"] == 2
    arm = place(job.model_copy(update={"arch": "arm64"}), idx, catalog, cfg, NOW)
    assert arm.choice.offer_id == gh200.offer_id
    assert arm.launch.kubernetes_job["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/arch"] == "arm64"


def test_multi_node_needs_the_interconnect(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    ib = offer(hourly=30.0, attrs={"interconnect": "InfiniBand", "network_gbps": 1600})
    eth = offer(hourly=20.0, attrs={"interconnect": "ethernet", "network_gbps": 100})
    single = offer(instance_type="p4d.16x", gpus=16, hourly=60.0)
    job = request(gpu={"count": 16}, interconnect="infiniband")
    d = place(job, index(ib, eth, single), catalog, cfg, NOW)
    assert d.choice.offer_id == ib.offer_id and d.rejected["constraint"] == 1
    assert [o.offer_id for o in d.alternatives] == [single.offer_id]  # one node needs no interconnect
    fast = request(gpu={"count": 16}, interconnect={"min_gbps": 400})
    assert place(fast, index(eth, ib), catalog, cfg, NOW).choice.offer_id == ib.offer_id


def test_committed_offers_only_when_held(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    od = offer(hourly=20.0)
    ri = offer(purchase="reserved", term="1y", hourly=12.0, list_hourly=20.0)
    d = place(request(), index(od, ri), catalog, cfg, NOW)
    assert d.choice.offer_id == od.offer_id and d.rejected["constraint"] == 1
    held = request(held_commitments=[{"provider": "aws", "purchase": "reserved"}])
    d = place(held, index(od, ri), catalog, cfg, NOW)
    assert d.choice.offer_id == ri.offer_id and d.choice.hourly_usd == 0
    assert d.choice.breakdown.compute == 0
    # idle for one node only: the second node pays the list price, so on-demand is as dear
    busy = request(gpu={"count": 16}, held_commitments=[{"provider": "aws", "unused_instances": 1}])
    d = place(busy, index(od, ri), catalog, cfg, NOW)
    assert d.choice.offer_id == ri.offer_id and d.choice.hourly_usd == Decimal("20.0")
    marked = offer(purchase="savings_plan", hourly=15.0, attrs={"held_commitment": True, "unused_quantity": 1})
    assert place(request(), index(od, marked), catalog, cfg, NOW).choice.offer_id == marked.offer_id


def test_breakdown_sums_exactly(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    spot = offer(
        "gcp", "us-central1", "a2-ultragpu-8g", "spot", hourly=7.123457, attrs={"interruption_rate_per_hour": 0.33}
    )
    job = request(data={"location": "aws:us-east-1", "size_gb": 1234.5}, checkpoint={"size_gb": 150})
    o = place(job, index(spot), catalog, cfg, NOW).choice
    b = o.breakdown
    assert b.compute + b.interruptions + b.egress + b.checkpoint_storage == o.expected_cost_usd
    assert min(b.compute, b.interruptions, b.egress, b.checkpoint_storage) > 0
    assert any("spot" in r for r in o.reasons)
    assert msgspec.to_builtins(o)["expected_cost_usd"] == str(o.expected_cost_usd)


def test_explicit_checkpoint_interval_is_used(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    spot = offer(purchase="spot", hourly=8.0, attrs={"interruption_rate_per_hour": 0.2})
    auto = place(request(), index(spot), catalog, cfg, NOW).choice
    fixed = place(request(checkpoint={"interval_minutes": 240}), index(spot), catalog, cfg, NOW).choice
    assert fixed.checkpoint_interval_minutes == 240
    assert auto.expected_hours < fixed.expected_hours  # the Young/Daly optimum beats a 4 h interval at 0.2/h


def test_alternatives_are_ranked_and_limited(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    offers = [offer(region=f"us-east-{i % 2 + 1}", hourly=10.0 + i) for i in range(12)]
    d = place(request(alternatives=3), index(*offers), catalog, cfg, NOW)
    costs = [o.expected_cost_usd for o in [d.choice, *d.alternatives]]
    assert len(d.alternatives) == 3 and costs == sorted(costs)
    assert d.choice.offer_id == offers[0].offer_id
    assert d.examined < 12  # the cost bound stopped the walk


def test_errors(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    with pytest.raises(UnknownGpu, match=r"gpu\.models"):
        place(request(gpu={"count": 1, "models": ["H1OO-XL"]}), index(offer()), catalog, cfg, NOW)
    with pytest.raises(UnknownGpu, match=r"work\.reference_gpu"):
        place(request(work={"reference_gpu": "H100"}), index(offer()), catalog, cfg, NOW)  # SXM or PCIe?
    # a family whose models all run at the same speed is a fine reference
    assert place(request(work={"reference_gpu": "A100"}), index(offer()), catalog, cfg, NOW).choice.work_hours == 10
    with pytest.raises(Infeasible) as err:
        place(request(), index(), catalog, cfg, NOW)
    assert sum(err.value.rejected.values()) == 0


def test_request_validation_names_each_bad_field() -> None:
    with pytest.raises(ValidationError) as err:
        request(
            gpu={"count": 0},
            work={"hours": -1},
            workload="gaming",
            checkpoint={"interval_minutes": 0},
            data={"location": "nowhere"},
            env={"1BAD": "x"},
            constraints={"max_hourly_usd": 0, "colour": "red"},
        )
    where = {".".join(str(p) for p in e["loc"]) for e in err.value.errors()}
    assert {
        "gpu.count",
        "work.hours",
        "workload",
        "data.location",
        "env",
        "constraints.max_hourly_usd",
        "constraints.colour",
    } <= where
    assert any(w.startswith("checkpoint.interval_minutes") for w in where)


def test_a_source_confirmed_after_the_index_was_built_makes_its_offers_fresh(
    catalog: GpuCatalog, cfg: PlacementConfig
) -> None:
    """An index freshened by polls that changed no offer: the newer confirmation decides staleness, and the
    answer tells it, while the placement preparation of the offers is reused."""
    cheap = offer(hourly=10.0, source="aws", age_minutes=200)  # stale on its own: the source allows 2 h
    dear = offer("gcp", "us-central1", "a2-ultragpu-8g", hourly=30.0, source="gcp", age_minutes=5)
    built = index(cheap, dear, max_age={"aws": timedelta(hours=2), "gcp": timedelta(hours=2)})
    assert place(request(), built, catalog, cfg, NOW).choice.offer_id == dear.offer_id
    confirmed = NOW - timedelta(minutes=3)
    fresh = built.freshened({"aws": confirmed}, NOW)
    assert fresh.offers is built.offers
    answer = place(request(), fresh, catalog, cfg, NOW)
    assert answer.choice.offer_id == cheap.offer_id
    assert answer.choice.price_observed_at == confirmed
    assert "price confirmed 3 min ago by aws" in answer.choice.reasons
    assert evaluate_all(request(), fresh, catalog, cfg, NOW)[0].offer_id == cheap.offer_id
    # a confirmation older than the offer's own changes nothing
    older = built.freshened({"gcp": NOW - timedelta(hours=5)}, NOW)
    assert place(request(), older, catalog, cfg, NOW).choice.price_observed_at == dear.last_confirmed_at


def test_an_evicted_preparation_and_its_offers_are_freed(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    """The engine keeps the preparations of two indexes (the live one and the one swapped in); an older one is
    freed, in slices, with nothing left holding its offers."""
    import sys

    from broker.placement.engine import _CACHE, warm

    first = [offer(hourly=10.0 + i) for i in range(50)]
    mine = first[0]
    warm(index(*first), catalog, cfg)
    del first
    held = sys.getrefcount(mine)
    for _ in range(2):  # two newer indexes: the first one leaves the cache
        warm(index(offer(hourly=9.0)), catalog, cfg)
    assert len(_CACHE) == 2
    assert sys.getrefcount(mine) == 2  # this test's own name, and getrefcount's argument
    assert held > 2


def test_a_preparation_reusing_offers_is_the_one_made_afresh(catalog: GpuCatalog, cfg: PlacementConfig) -> None:
    """After a reload that kept most offers, their preparation and bucket are taken from the previous one: the
    result must be the preparation made from nothing, bucket for bucket."""
    from broker.placement.engine import _buckets, _per_offer, _prepare, _Reuse

    universe = [
        offer("aws", "us-east-1", "p4d.24xlarge", "spot", hourly=9.0, attrs={"interruption_band": ">20%"}),
        offer("aws", "us-east-1", "p4d.24xlarge", "spot", hourly=9.5, attrs={"interruption_band": "<5%"}),
        offer("aws", "us-west-2", "p4d.24xlarge", "spot", hourly=8.0, availability=Availability.UNKNOWN),
        offer("aws", "us-east-1", "p4d.24xlarge", "reserved", hourly=12.0, attrs={"held_commitment": True}),
        offer("aws", "us-east-1", "p4d.24xlarge", "savings_plan", hourly=13.0),
        offer("gcp", "europe-west4", "a2-ultragpu-8g", "on_demand", hourly=30.0),
        offer("gcp", "europe-west4", "a2-ultragpu-1g", "on_demand", gpus=1, hourly=4.0),
        offer("lambda", "us-east-1", "gpu_1x_gh200", gpu="GH200", gpus=1, hourly=3.2, attrs={"arch": "aarch64"}),
        offer("azure", "eastus", "ND96amsr_A100_v4", "spot", hourly=7.0, availability=Availability.UNAVAILABLE),
    ]
    before = index(*universe)
    after = index(*universe[1:], offer("aws", "us-east-1", "p4d.24xlarge", "spot", hourly=8.5))

    def shape(prep):  # type: ignore[no-untyped-def]
        return sorted(
            (arch, b.model.id, b.kind, b.avail, b.provider, b.region, b.gpn, b.purchase, b.held_attr,
             [(p.offer.offer_id, p.gpu_hourly, p.node_rate, p.rate_source) for p in b.offers])
            for arch, b in _buckets(prep)
        )  # fmt: skip

    reused = _prepare(after, catalog, cfg, _per_offer(_prepare(before, catalog, cfg, _Reuse())))
    afresh = _prepare(after, catalog, cfg, _Reuse())
    assert shape(reused) == shape(afresh)
    assert len(shape(afresh)) >= 7
    assert (reused.unplaceable, reused.total) == (afresh.unplaceable, afresh.total)
