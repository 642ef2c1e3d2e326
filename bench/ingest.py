"""Ingest benchmark: a synthetic but realistic universe of GPU offers over the six main providers.

    python bench/ingest.py [--offers 100000] [--polls 100] [--change 0.01] [--database-url URL] [--phases]

Prints: time to ingest the first snapshot; time to re-ingest with 1% of prices changed; price rows written by
that re-ingest (must equal the prices changed); database size after N polls, and its growth per poll.
``--phases`` also prints where each of the first three ingests spent its time (ingest's DEBUG log).
Default database: a fresh SQLite file in a temporary directory. For PostgreSQL pass a URL of an empty database.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, func, select, text

from broker.domain import Availability, OfferKey, PriceObservation, Snapshot
from broker.gpus import GpuCatalog
from broker.store import migrate
from broker.store.db import make_engine
from broker.store.ingest import GpuResolver, apply_snapshot
from broker.store.models import PriceInterval

# (provider, regions, zones per region, instance types (type, gpu, count, base $/h), purchase options)
REGIONS = {
    "aws": ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "eu-north-1", "ap-northeast-1",
            "ap-southeast-2", "ap-south-1", "sa-east-1", "ca-central-1", "eu-west-2"],
    "gcp": ["us-central1", "us-east4", "us-east5", "us-west1", "europe-west4", "europe-west1", "asia-east1",
            "asia-northeast1", "asia-southeast1", "me-west1"],
    "azure": ["eastus", "eastus2", "westus3", "southcentralus", "westeurope", "northeurope", "swedencentral",
              "uksouth", "japaneast", "australiaeast"],
    "coreweave": ["US-EAST-04", "US-WEST-01", "US-CENTRAL-02", "EU-SOUTH-03"],
    "lambda": ["us-east-1", "us-west-1", "us-west-2", "us-south-1", "us-midwest-1", "europe-central-1"],
    "crusoe": ["us-east1-a", "us-northcentral1-a", "us-southcentral1-a", "eu-iceland1-a"],
}
TYPES = {
    "aws": [("p5.48xlarge", "H100-SXM", 8, 98.32), ("p5e.48xlarge", "H200", 8, 113.0), ("p4d.24xlarge", "A100-40GB", 8,
            32.77), ("p4de.24xlarge", "A100-80GB", 8, 40.97), ("g6e.xlarge", "L40S", 1, 1.861),
            ("g6.xlarge", "L4", 1, 0.805), ("g5.xlarge", "A10G", 1, 1.006), ("g4dn.xlarge", "T4", 1, 0.526),
            ("p6-b200.48xlarge", "B200", 8, 113.93), ("g6e.12xlarge", "L40S", 4, 10.49)],
    "gcp": [("a3-highgpu-8g", "H100-SXM", 8, 88.25), ("a2-ultragpu-8g", "A100-80GB", 8, 40.44),
            ("a2-highgpu-8g", "A100-40GB", 8, 29.39), ("g2-standard-4", "L4", 1, 0.71),
            ("a3-ultragpu-8g", "H200", 8, 84.8), ("a4-highgpu-8g", "B200", 8, 100.0)],
    "azure": [("Standard_ND96isr_H100_v5", "H100-SXM", 8, 98.32), ("Standard_ND96amsr_A100_v4", "A100-80GB", 8,
              32.77), ("Standard_NC24ads_A100_v4", "A100-80GB", 1, 3.67), ("Standard_NC4as_T4_v3", "T4", 1, 0.526),
              ("Standard_ND96isr_H200_v5", "H200", 8, 110.24), ("Standard_NC40ads_H100_v5", "H100-NVL", 1, 6.98)],
    "coreweave": [("gd-8xh100ib-i128", "H100-SXM", 8, 49.24), ("gd-8xh200ib-i128", "H200", 8, 50.44),
                  ("gd-8xa100-i128", "A100-80GB", 8, 21.6), ("gd-8xl40s-i128", "L40S", 8, 18.0)],
    "lambda": [("gpu_8x_h100_sxm5", "H100-SXM", 8, 23.92), ("gpu_1x_h100_pcie", "H100-PCIE", 1, 2.49),
               ("gpu_8x_a100_80gb_sxm4", "A100-80GB", 8, 14.32), ("gpu_1x_a10", "A10", 1, 0.75)],
    "crusoe": [("h100-80gb-sxm-ib.8x", "H100-SXM", 8, 31.6), ("a100-80gb-sxm-ib.8x", "A100-80GB", 8, 15.6),
               ("l40s-48gb.8x", "L40S", 8, 12.0)],
}
COMMITTED = [("reserved", t, p, plan) for t in ("1y", "3y") for p in ("no_upfront", "partial_upfront", "all_upfront")
             for plan in ("standard", "convertible")]


def universe(target: int, rng: random.Random) -> list[PriceObservation]:
    """Cartesian offers per provider (regions x zones x types x purchase options), cut to ``target``."""
    out: list[PriceObservation] = []
    for variant in itertools.count():
        for provider, regions in REGIONS.items():
            for region, (itype, gpu, count, base) in itertools.product(regions, TYPES[provider]):
                name = itype if variant == 0 else f"{itype}.v{variant}"  # more shapes when a bigger universe is asked
                keys: list[tuple[str, str, str, str, str, float]] = [("on_demand", "", "", "", "", 1.0)]
                keys += [("spot", f"{region}{z}", "", "", "", 0.35) for z in "abcdef"]
                if provider in ("aws", "azure", "gcp"):
                    keys += [(p, "", t, pay, plan, 0.6 if t == "1y" else 0.4) for p, t, pay, plan in COMMITTED]
                    keys += [("savings_plan", "", t, "no_upfront", "compute", 0.7) for t in ("1y", "3y")]
                for purchase, zone, term, pay, plan, factor in keys:
                    price = Decimal(str(round(base * factor * rng.uniform(0.9, 1.1), 4)))
                    out.append(PriceObservation(
                        key=OfferKey(provider=provider, region=region, zone=zone, instance_type=name,
                                     purchase=purchase, term=term, payment=pay, plan=plan),
                        hourly_usd=price, gpu_name=gpu, gpu_count=count, vcpus=8.0 * count,
                        memory_gb=64.0 * count, availability=Availability.UNKNOWN))
                    if len(out) >= target:
                        return out
    raise AssertionError("unreachable")


def mutate(offers: list[PriceObservation], share: float, rng: random.Random) -> int:
    """Change ``share`` of prices in place (spot mostly); returns how many changed."""
    n = max(1, int(len(offers) * share))
    for o in rng.sample(offers, n):
        o.hourly_usd = (o.hourly_usd * Decimal(str(rng.choice((0.97, 0.98, 1.02, 1.03))))).quantize(Decimal("0.0001"))
    return n


def db_size(engine: Engine) -> int:
    if engine.dialect.name == "sqlite":
        path = engine.url.database or ""
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def price_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(PriceInterval)).scalar_one())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--offers", type=int, default=100_000)
    ap.add_argument("--polls", type=int, default=100)
    ap.add_argument("--change", type=float, default=0.01, help="share of prices changing per poll")
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--phases", action="store_true", help="print the time per phase of the first three ingests")
    args = ap.parse_args()
    phases = logging.getLogger("broker.store.ingest")
    if args.phases:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("    phases: %(message)s"))
        phases.addHandler(handler)
        phases.setLevel(logging.DEBUG)

    tmp = tempfile.mkdtemp(prefix="broker-bench-")
    url = args.database_url or f"sqlite:///{tmp}/bench.db"
    engine = make_engine(url)
    migrate.upgrade(engine)
    resolver = GpuResolver(GpuCatalog.load())
    rng = random.Random(42)
    offers = universe(args.offers, rng)
    t = datetime(2026, 1, 1, tzinfo=UTC)

    def poll(i: int) -> tuple[float, int]:
        s = Snapshot(source="bench", naming="canonical", taken_at=t + timedelta(minutes=15 * i), observations=offers)
        start = time.perf_counter()
        r = apply_snapshot(engine, s, resolver)
        return time.perf_counter() - start, r.prices_changed

    print(f"database: {engine.dialect.name}; offers: {len(offers):,}; change per poll: {args.change:.1%}")
    took, _ = poll(0)
    print(f"first snapshot ingest:          {took:6.2f} s  ({len(offers) / took:,.0f} offers/s)")
    size0 = db_size(engine)
    rows0 = price_rows(engine)
    changed = mutate(offers, args.change, rng)
    took, reported = poll(1)
    written = price_rows(engine) - rows0
    print(f"re-ingest, {args.change:.0%} changed:         {took:6.2f} s")
    print(f"prices changed / rows written:  {changed:,} / {written:,}  (ingest reported {reported:,})")
    took, _ = poll(2)
    print(f"re-ingest, nothing changed:     {took:6.2f} s  (rows written: {price_rows(engine) - rows0 - written})")
    phases.setLevel(logging.NOTSET)
    times = []
    for i in range(3, args.polls + 1):
        mutate(offers, args.change, rng)
        times.append(poll(i)[0])
    size = db_size(engine)
    rows = price_rows(engine)
    print(f"after {args.polls} polls: database {size / 2**20:,.1f} MiB (first snapshot {size0 / 2**20:,.1f} MiB), "
          f"price rows {rows:,}; growth {((size - size0) / max(args.polls - 1, 1)) / 2**10:,.0f} KiB/poll for "
          f"~{changed:,} changes/poll; median poll {sorted(times)[len(times) // 2] if times else 0:.2f} s")
    engine.dispose()


if __name__ == "__main__":
    main()
