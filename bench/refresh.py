"""What an API process spends on its offer index after each poll: a reload when the poll changed offers, a
freshen (newer confirmation times only) when it changed none.

    .venv/bin/python bench/refresh.py [--offers 100000] [--database-url URL] [--share 0.25]

A ``file`` source of ``--offers`` offers is polled the way ``broker worker`` polls it, while a second runtime (the
API process) refreshes its index after each poll. The file alternates between versions that differ in a third of
the prices (and 5% of the offers) and repeats each version once, so half the polls change offers and half confirm
prices only. Prints, per poll, what changed and the refresh's CPU time (refreshed at full speed), then, for one
more reload, what the requests of the API process would notice: the refresh runs in the API's refresher thread,
paced to ``--share`` of the time (the ``background_share`` setting), while this thread stands in for the event loop
and asks for the interpreter every millisecond; the longest it had to wait is the stall a request would see.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults import bigsnap  # noqa: E402
from tests.faults.servers import write_config, write_json_atomic  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--offers", type=int, default=100_000)
    ap.add_argument("--database-url", help="an empty database (default: a temporary SQLite file)")
    ap.add_argument("--share", type=float, default=0.25, help="the refresher's pace in the last reload")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="broker-refresh-"))
    snap = work / "snap.json"
    config = write_config(
        work / "config", f'[sources.{bigsnap.SOURCE}]\nkind = "file"\npath = "{snap}"\ninterval_minutes = 15\n'
    )
    os.environ.update(
        BROKER_CONFIG=str(config),
        BROKER_DATABASE_URL=args.database_url or f"sqlite:///{work / 'broker.db'}",
        BROKER_DATA_DIR=str(work),
    )
    from broker.polling.service import poll_source
    from broker.runtime import Runtime
    from broker.store import migrate

    api, worker = Runtime.create(), Runtime.create()
    migrate.upgrade(worker.engine)
    source = worker.settings.sources[bigsnap.SOURCE]
    print(f"{args.offers} offers, {worker.engine.url.get_backend_name()}")
    for i, version in enumerate((0, 0, 1, 1, 0, 0)):
        doc = bigsnap.snapshot_json(args.offers, version)
        del doc["taken_at"]  # each poll sees the prices as of when it runs
        write_json_atomic(snap, doc)
        result = poll_source(worker, source, refresh_index=False)
        reloads = api.index.reloads
        started = time.process_time()
        api.index.refresh_if_changed()
        took = time.process_time() - started
        kind = "reload " if api.index.reloads > reloads else "freshen"
        print(f"poll {i + 1}: {result.prices_changed:6} prices changed -> index {kind} {took * 1000:8.1f} ms CPU")
    doc = bigsnap.snapshot_json(args.offers, 1)
    del doc["taken_at"]
    write_json_atomic(snap, doc)
    poll_source(worker, source, refresh_index=False)
    waits, wall = beside_requests(api, args.share)
    print(
        f"reload in the refresher at share {args.share:g}: {wall:.1f} s; the loop's waits for the interpreter "
        f"p50 {waits[len(waits) // 2] * 1000:.2f} ms, p99 {waits[int(len(waits) * 0.99)] * 1000:.2f} ms, "
        f"longest {waits[-1] * 1000:.1f} ms"
    )
    api.close()
    worker.close()
    shutil.rmtree(work, ignore_errors=True)


def beside_requests(api: Any, share: float) -> tuple[list[float], float]:
    """One reload in an IndexRefresher thread; meanwhile this thread sleeps 1 ms at a time and records how long
    past that each wake-up got the interpreter back (sorted)."""
    from broker.api.app import IndexRefresher

    refresher = IndexRefresher(api, every_s=0.01, share=share)
    reloads = api.index.reloads
    waits: list[float] = []
    started = time.perf_counter()
    refresher.start()
    while api.index.reloads == reloads and time.perf_counter() - started < 120:
        before = time.perf_counter()
        time.sleep(0.001)
        waits.append(max(time.perf_counter() - before - 0.001, 0.0))
    refresher.stop()
    return sorted(waits), time.perf_counter() - started


if __name__ == "__main__":
    main()
