"""Placement latency on a synthetic 100k-offer index: prints p50/p99 of in-process ``place`` calls.

    .venv/bin/python bench/place.py [--offers 100000] [--requests 2000] [--seed 1] [--clock wall|cpu]

``--clock cpu`` times with this thread's CPU time: steadier than wall time on a machine shared with other work.

The index mixes every catalog GPU over six providers, 40 regions, zones, on-demand/spot/reserved, realistic
spreads of price, age, availability and spot interruption attributes. Requests vary GPU, count, data location,
constraints and workload. ``warm`` prepares the index first (reported separately, as the broker does right after
each index swap); then each request is timed, its launch specs included. Caches per constraint shape fill as
requests arrive, so the first requests of each shape are in the figures too.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker.domain import Availability, OfferKey
from broker.gpus import GpuCatalog
from broker.offers.index import IndexedOffer, OfferIndex
from broker.placement import Infeasible, PlacementConfig, PlaceRequest, place, warm

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 27, tzinfo=UTC)
PROVIDERS = {
    "aws": ["us-east-1", "us-east-2", "us-west-2", "eu-central-1", "eu-west-1", "eu-west-2", "ap-northeast-1"],
    "gcp": ["us-central1", "us-east4", "europe-west4", "europe-west3", "asia-northeast1", "us-west1"],
    "azure": ["eastus", "westus2", "westeurope", "northeurope", "swedencentral", "japaneast"],
    "lambda": ["us-east-1", "us-west-1", "us-south-1", "europe-central-1", "asia-northeast-1"],
    "crusoe": ["us-east1-a", "us-northcentral1-a", "eu-iceland1-a"],
    "nebius": ["eu-north1", "eu-west1", "us-central1"],
}
PURCHASES = ["on_demand", "spot", "spot", "reserved"]
BANDS = ["<5%", "5-10%", "10-15%", "15-20%", ">20%"]


def synthetic_index(catalog: GpuCatalog, n: int, rng: random.Random) -> OfferIndex:
    models = list(catalog.models())
    offers: list[IndexedOffer] = []
    for i in range(n):
        m = rng.choice(models)
        provider = rng.choice(list(PROVIDERS))
        region = rng.choice(PROVIDERS[provider])
        gpus = rng.choice([1, 1, 2, 4, 8, 8])
        purchase = rng.choice(PURCHASES)
        base = m.relative_throughput * rng.uniform(1.2, 3.5) * gpus
        hourly = base * (
            rng.uniform(0.2, 0.6) if purchase == "spot" else rng.uniform(0.6, 0.8) if purchase == "reserved" else 1.0
        )
        attrs: dict[str, Any] = {}
        if purchase == "spot":
            roll = rng.random()
            if roll < 0.3:
                attrs["interruption_rate_per_hour"] = rng.uniform(0.02, 1.5)
            elif roll < 0.7:
                attrs["interruption_band"] = rng.choice(BANDS)
        if rng.random() < 0.2:
            attrs["interconnect"] = "infiniband"
        seen = NOW - timedelta(minutes=rng.expovariate(1 / 60))
        offers.append(
            IndexedOffer(
                offer_id=i + 1,
                key=OfferKey(
                    provider,
                    region,
                    f"{m.id.lower()}.{gpus}x",
                    purchase,
                    zone=f"{region}-{rng.choice('abc')}",
                    term="1y" if purchase == "reserved" else "",
                ),
                source=provider,
                gpu_model=m.id,
                gpu_known=rng.random() > 0.01,
                gpu_count=gpus,
                gpu_memory_gb=m.memory_gb,
                vcpus=float(gpus * 12),
                memory_gb=float(gpus * 120),
                hourly_usd=round(hourly, 4),
                list_hourly_usd=None,
                observed_at=seen,
                last_confirmed_at=seen,
                availability=rng.choice([Availability.AVAILABLE, Availability.UNKNOWN, Availability.UNAVAILABLE]),
                available_quantity=None,
                attrs=attrs,
            )
        )
    return OfferIndex.build(offers, NOW, {p: timedelta(hours=3) for p in PROVIDERS})


def synthetic_requests(n: int, rng: random.Random) -> list[PlaceRequest]:
    gpu_choices: list[dict[str, Any]] = [
        {"models": ["H100"]},
        {"models": ["A100"]},
        {"models": ["H100", "H200", "B200"]},
        {"min_memory_gb": 80},
        {"models": ["L4", "L40S"]},
        {"min_memory_gb": 40, "vendor": "nvidia"},
    ]
    out = []
    for _ in range(n):
        constraints: dict[str, Any] = {}
        roll = rng.random()
        if roll < 0.2:
            constraints["jurisdictions"] = ["EU"]
        elif roll < 0.35:
            constraints["providers"] = ["aws", "gcp"]
        if rng.random() < 0.3:
            constraints["deadline_hours"] = rng.choice([24, 48, 100])
        out.append(
            PlaceRequest.model_validate(
                {
                    "name": "bench",
                    "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                    "command": ["python", "train.py"],
                    "gpu": {"count": rng.choice([1, 2, 8, 16]), **rng.choice(gpu_choices)},
                    "work": {"hours": rng.choice([2, 10, 50]), "reference_gpu": "A100-80GB"},
                    "workload": rng.choice(["training", "training", "batch", "inference"]),
                    "data": rng.choice([None, {"location": "aws:us-east-1", "size_gb": rng.choice([10, 2000, 50000])}]),
                    "constraints": constraints,
                }
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    rng = random.Random(args.seed)
    catalog = GpuCatalog.load()
    cfg = PlacementConfig.load(ROOT / "config" / "placement.toml", ROOT / "config" / "egress.toml")
    idx = synthetic_index(catalog, args.offers, rng)
    t0 = time.perf_counter()
    warm(idx, catalog, cfg)
    prep_ms = (time.perf_counter() - t0) * 1000
    gc.freeze()  # as the service does after each index swap: the collector leaves the long-lived index alone
    reqs = synthetic_requests(args.requests, rng)
    times, examined, skipped, infeasible = [], [], [], 0
    for req in reqs:
        t = clock()
        try:
            d = place(req, idx, catalog, cfg, NOW)
            examined.append(d.examined)
            skipped.append(d.not_examined)
        except Infeasible:
            infeasible += 1
        times.append((clock() - t) * 1000)
    times.sort()
    q = statistics.quantiles(times, n=100)
    print(f"index: {len(idx.offers)} offers, prepared once in {prep_ms:.0f} ms")
    print(
        f"requests: {len(reqs)} ({infeasible} infeasible); offers examined per decision: median "
        f"{statistics.median(examined) if examined else 0:.0f}, max {max(examined, default=0)}; "
        f"left unexamined by the cost bound: median {statistics.median(skipped) if skipped else 0:.0f}"
    )
    print(f"place() ({args.clock} clock): p50 {q[49]:.3f} ms  p99 {q[98]:.3f} ms  max {times[-1]:.3f} ms")


if __name__ == "__main__":
    main()
