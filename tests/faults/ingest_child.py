"""Child process of the crash test: applies version 1 of the big snapshot and reports its progress on stdout.

    python -m tests.faults.ingest_child DATABASE_URL N PAUSE_AFTER

PAUSE_AFTER names a table (``offers``, ``price_intervals``): right after ingest has bulk-written that table inside
its transaction, the child says so and waits, so the parent's SIGKILL lands inside the transaction for certain.
``none``: no pause (the parent kills it wherever it happens to be).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from broker.gpus import GpuCatalog
from broker.store import bulk
from broker.store.db import make_engine
from broker.store.ingest import apply_snapshot
from tests.faults import bigsnap


def main() -> None:
    url, n, pause_after = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    original = bulk.Dialect.insert

    def insert(self: bulk.Dialect, table: str, columns: Any, rows: Any, pg_types: Any = ()) -> None:
        original(self, table, columns, rows, pg_types)
        print(f"wrote {table} {len(rows)}", flush=True)
        if table == pause_after:
            time.sleep(120)  # the parent kills us here; never reached the commit

    bulk.Dialect.insert = insert  # type: ignore[method-assign]
    engine = make_engine(url)
    snap = bigsnap.snapshot(n, 1)
    catalog = GpuCatalog.load()
    print("ingesting", flush=True)
    result = apply_snapshot(engine, snap, catalog)
    print(f"committed {result.outcome.value}", flush=True)


if __name__ == "__main__":
    main()
