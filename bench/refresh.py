"""What an API process spends on its offer index after each poll: a reload when the poll changed offers, a
freshen (newer confirmation times only) when it changed none.

    .venv/bin/python bench/refresh.py [--offers 100000] [--database-url URL]

A ``file`` source of ``--offers`` offers is polled the way ``broker worker`` polls it, while a second runtime (the
API process) refreshes its index after each poll as its refresher thread does. The file alternates between
versions that differ in a third of the prices (and 5% of the offers) and repeats each version once, so half
the polls change offers and half confirm prices only. Prints, per poll, what changed and the refresh's CPU time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults import bigsnap  # noqa: E402
from tests.faults.servers import write_config, write_json_atomic  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--offers", type=int, default=100_000)
    ap.add_argument("--database-url", help="an empty database (default: a temporary SQLite file)")
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
    api.close()
    worker.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
