"""Price-history benchmark: one year of 15-minute polls for 20k offers, then the two history queries that matter.

    python bench/history.py [--offers 20000] [--days 365] [--spot-changes 3] [--database-url URL] [--repeat 5]

The year is written straight into ``offers`` / ``price_intervals`` / ``poll_runs`` in bulk (a year of ingests
would take hours and measure ingest, not history). Change rates: spot prices change a Poisson-distributed number
of times a day (``--spot-changes`` per day on average, at 15-minute poll instants); on-demand and committed prices
about three times a year. Every source records a poll run every 15 minutes, with a few outages.

Timed after the daily roll-up is built (its build time is printed; in service it grows a day at a time), best and
median of ``--repeat`` warm runs: the daily minimum per GPU-hour for one GPU model across all
providers over the year (``GET /v1/prices/history?gpu=...&step=1d&agg=min&group_by=gpu_model``, polling gaps
included) — target <= 100 ms; one offer's raw price history over the year (``step=raw``) — target <= 20 ms.
Default database: a fresh SQLite file in a temporary directory. For PostgreSQL pass a URL of an EMPTY database.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, inspect, text

from broker.gpus import GpuCatalog
from broker.history import rollup
from broker.history.schemas import build_query
from broker.history.service import price_history
from broker.store import migrate
from broker.store.bulk import Dialect
from broker.store.db import make_engine

POLL = timedelta(minutes=15)
POLLS_PER_DAY = 96
# provider -> (regions, spot zones per region (0: no spot market), committed variants per offer)
PROVIDERS = {
    "aws": (12, 3, 14),  # 12 reserved (term x payment x class) + 2 savings plans
    "azure": (10, 1, 4),  # 1y/3y reserved + 1y/3y savings plan
    "gcp": (10, 1, 2),  # 1y/3y committed use
    "coreweave": (4, 0, 0),
    "lambda": (6, 0, 0),
    "crusoe": (4, 0, 1),
    "nebius": (4, 0, 1),
    "runpod": (8, 1, 0),
}
# (gpu model, GPUs per instance, on-demand $/instance-hour, relative popularity)
SHAPES = [
    ("H100-SXM", 8, 98.3, 10), ("H100-SXM", 1, 4.1, 4), ("H200", 8, 84.8, 6), ("A100-80GB", 8, 40.9, 7),
    ("A100-80GB", 1, 3.7, 5), ("A100-40GB", 8, 32.8, 4), ("L40S", 1, 1.86, 6), ("L40S", 4, 10.5, 3),
    ("L4", 1, 0.80, 6), ("A10G", 1, 1.0, 5), ("T4", 1, 0.53, 5), ("B200", 8, 113.9, 4), ("H100-PCIE", 1, 2.5, 3),
    ("GH200", 1, 1.5, 1), ("MI300X", 8, 48.0, 2), ("V100", 8, 24.5, 2),
]  # fmt: skip
OFFER_COLS = ("id", "source", "provider", "region", "zone", "instance_type", "purchase", "term", "payment", "plan",
              "gpu_model", "gpu_known", "gpu_raw_name", "gpu_count", "gpu_memory_gb", "vcpus", "memory_gb", "attrs",
              "demo", "meta_hash", "first_seen_at", "withdrawn_at")  # fmt: skip
PRICE_COLS = ("offer_id", "hourly_usd", "list_hourly_usd", "valid_from", "valid_to", "last_confirmed_at")
RUN_COLS = ("source", "started_at", "finished_at", "snapshot_taken_at", "outcome", "complete", "demo", "offers_seen",
            "offers_new", "prices_changed", "offers_withdrawn", "rejected", "warnings")  # fmt: skip


Shape = tuple[str, str, str, str, str, str, float, str, int]


def offer_universe(target: int, rng: random.Random) -> list[Shape]:
    """(provider, region, zone, instance type, purchase, term, on-demand $/h, gpu, count) rows, cut to ``target``."""
    out: list[Shape] = []
    weights = [s[3] for s in SHAPES]
    variant = 0
    while len(out) < target:
        for provider, (regions, zones, committed) in PROVIDERS.items():
            gpu, count, base, _ = rng.choices(SHAPES, weights)[0]
            itype = f"{provider}-{gpu.lower()}-{count}x-v{variant}"
            for r in range(regions):
                region = f"{provider}-region-{r}"
                price = base * rng.uniform(0.6, 1.1)
                out.append((provider, region, "", itype, "on_demand", "", price, gpu, count))
                out += [(provider, region, f"{region}{'abc'[z]}", itype, "spot", "", price, gpu, count)
                        for z in range(zones)]  # fmt: skip
                out += [(provider, region, "", itype, "reserved", f"c{c}", price, gpu, count) for c in range(committed)]
        variant += 1
    return out[:target]


def price_path(rng: random.Random, purchase: str, base: float, polls: int) -> list[tuple[int, float]]:
    """(poll index, price) at each change. Spot: ~N changes a day around 35% of on-demand; else ~3 a year."""
    per_poll = ARGS_SPOT / POLLS_PER_DAY if purchase == "spot" else 3 / (365 * POLLS_PER_DAY)
    price = base * (rng.uniform(0.25, 0.45) if purchase == "spot" else 1.0 if purchase == "on_demand" else 0.6)
    floor, cap = price * 0.5, price * 1.6
    out = [(0, price)]
    i = 0
    while True:
        i += max(1, round(rng.expovariate(per_poll)))
        if i >= polls:
            return out
        price = min(cap, max(floor, price * rng.uniform(0.9, 1.1)))
        out.append((i, price))


ARGS_SPOT = 3.0


def generate(engine: Engine, n_offers: int, days: int, rng: random.Random, now: datetime) -> tuple[int, int]:
    start = now - timedelta(days=days)
    polls = days * POLLS_PER_DAY
    offers = offer_universe(n_offers, rng)
    rows = 0
    with engine.begin() as conn:
        db = Dialect(conn)
        ids = db.next_ids("offers", len(offers))
        offer_rows: list[tuple[object, ...]] = [
            (oid, p, p, region, zone, itype, purchase, term, "", "", gpu, db.boolean(True), gpu, count, None, None,
             None, "{}", db.boolean(False), "", db.dt(start), None)
            for oid, (p, region, zone, itype, purchase, term, _, gpu, count) in zip(ids, offers, strict=True)
        ]  # fmt: skip
        cols: tuple[str, ...] = OFFER_COLS
        if "key_hash" in {c["name"] for c in inspect(conn).get_columns("offers")}:
            # schemas that key offers by a digest of the key columns (provider .. plan), as ingest computes it
            cols += ("key_hash",)
            offer_rows = [(*r, _key_hash(r[2:10])) for r in offer_rows]
        db.insert("offers", cols, offer_rows)
        batch: list[tuple[object, ...]] = []
        for oid, (_, _, _, _, purchase, _, base, _, _) in zip(ids, offers, strict=True):
            path = price_path(rng, purchase, base, polls)
            for j, (i, price) in enumerate(path):
                t_from = start + i * POLL
                t_to = start + path[j + 1][0] * POLL if j + 1 < len(path) else None
                batch.append((oid, db.money(_usd(price)), None, db.dt(t_from), db.dt(t_to), db.dt(t_to or now)))
            if len(batch) > 200_000:
                db.insert("price_intervals", PRICE_COLS, batch)
                rows += len(batch)
                batch = []
        db.insert("price_intervals", PRICE_COLS, batch)
        rows += len(batch)
        runs = []
        for source in PROVIDERS:
            outages = {rng.randrange(polls) for _ in range(6)}  # six ~3-hour outages a year per source
            skip = {i + k for i in outages for k in range(12)}
            for i in range(polls):
                if i in skip:
                    continue
                t = db.dt(start + i * POLL)
                runs.append((source, t, t, t, "ok", db.boolean(True), db.boolean(False), 0, 0, 0, 0, "{}", "[]"))
        db.insert("poll_runs", RUN_COLS, runs)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return len(offers), rows


def _key_hash(key: tuple[object, ...]) -> bytes:
    return hashlib.blake2b("\x00".join(map(str, key)).encode(), digest_size=16).digest()


def _usd(x: float) -> Decimal:
    return Decimal(str(round(x, 4)))


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm: connection pool, statement caches, pages
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return min(times), statistics.median(times)


def main() -> None:
    global ARGS_SPOT
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--offers", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--spot-changes", type=float, default=3.0, help="mean spot price changes per offer per day")
    ap.add_argument("--gpu", default="H100-SXM", help="GPU model of the daily-minimum query")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    ARGS_SPOT = args.spot_changes

    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='broker-bench-')}/history.db"
    engine = make_engine(url)
    migrate.upgrade(engine)
    catalog = GpuCatalog.load()
    rng = random.Random(7)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    now -= timedelta(minutes=now.minute % 15)
    t0 = time.perf_counter()
    n_offers, n_rows = generate(engine, args.offers, args.days, rng, now)
    with engine.connect() as conn:
        mix: Counter[str] = Counter(
            dict(conn.execute(text("SELECT purchase, count(*) FROM offers GROUP BY purchase")).all())
        )
        model_offers = conn.execute(text("SELECT count(*) FROM offers WHERE gpu_model = :g"), {"g": args.gpu}).scalar()
        model_rows = conn.execute(
            text("SELECT count(*) FROM price_intervals p JOIN offers o ON o.id = p.offer_id WHERE o.gpu_model = :g"),
            {"g": args.gpu},
        ).scalar()
        busiest = conn.execute(
            text("SELECT offer_id, count(*) c FROM price_intervals GROUP BY offer_id ORDER BY c DESC LIMIT 1")
        ).one()
    print(f"database: {engine.dialect.name}; generated in {time.perf_counter() - t0:.0f} s")
    print(f"offers: {n_offers:,} ({', '.join(f'{k} {v:,}' for k, v in sorted(mix.items()))}); "
          f"price rows: {n_rows:,}; {args.gpu}: {model_offers:,} offers, {model_rows:,} price rows")  # fmt: skip

    year_ago = now - timedelta(days=args.days)
    daily = build_query(catalog, now=now, gpu=args.gpu, from_=year_ago, to=now, step="1d", agg="min",
                        group_by="gpu_model")  # fmt: skip
    raw = build_query(catalog, now=now, offer_id=busiest[0], from_=year_ago, to=now, step="raw", group_by="offer")
    intervals = dict.fromkeys(PROVIDERS, 15.0)

    def run_daily() -> object:
        result = price_history(engine, daily, now=now, intervals=intervals)
        assert len(result.series) == 1 and len(result.series[0].points) >= args.days - 1, "daily series incomplete"
        return result

    def run_raw() -> object:
        result = price_history(engine, raw, now=now, intervals=intervals)
        assert len(result.series[0].points) == busiest[1], "raw history incomplete"
        return result

    t0 = time.perf_counter()
    built_to = rollup.refresh(engine, now)
    print(
        f"daily roll-up built to {built_to:%Y-%m-%d} in {time.perf_counter() - t0:.1f} s (once; then a day at a time)"
    )
    t0 = time.perf_counter()
    price_history(engine, daily, now=now, intervals=intervals, use_rollup=False)
    print(f"same query without the roll-up (every price row): {(time.perf_counter() - t0) * 1000:,.0f} ms")
    best, med = timed(run_daily, args.repeat)
    print(f"daily min, {args.gpu}, all providers, {args.days} days: best {best:6.1f} ms, median {med:6.1f} ms "
          "(target <= 100 ms)")  # fmt: skip
    best, med = timed(run_raw, args.repeat)
    print(f"raw history of one offer ({busiest[1]:,} prices):   best {best:6.1f} ms, median {med:6.1f} ms "
          "(target <= 20 ms)")  # fmt: skip
    engine.dispose()


if __name__ == "__main__":
    main()
