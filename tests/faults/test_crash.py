"""Crash consistency: ``kill -9`` during a large ingest leaves the database exactly as before that poll, and the
next poll succeeds. Runs on the suite's database (SQLite file or PostgreSQL)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from broker.domain import Outcome
from broker.gpus import GpuCatalog
from broker.store.ingest import apply_snapshot
from tests.faults import bigsnap

ROOT = Path(__file__).resolve().parents[2]
N = int(os.environ.get("BROKER_FAULT_OFFERS", "50000"))
TABLES = ("offers", "price_intervals", "availability_intervals", "poll_runs", "source_state")


def db_state(engine: Engine) -> dict[str, Any]:
    """Row counts, withdrawn offers, and every current price (instance type -> USD per hour)."""
    with engine.connect() as conn:
        counts = {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TABLES}
        withdrawn = conn.execute(text("SELECT COUNT(*) FROM offers WHERE withdrawn_at IS NOT NULL")).scalar_one()
        running = conn.execute(text("SELECT COUNT(*) FROM poll_runs WHERE outcome = 'running'")).scalar_one()
        rows = conn.execute(
            text(
                "SELECT o.instance_type, p.hourly_usd FROM offers o JOIN price_intervals p "
                "ON p.offer_id = o.id AND p.valid_to IS NULL WHERE o.withdrawn_at IS NULL"
            )
        ).all()
    prices = {r[0]: Decimal(str(r[1])) for r in rows}
    return {"counts": counts, "withdrawn": withdrawn, "running": running, "prices": prices}


def _read_until(proc: subprocess.Popen[str], wanted: str, timeout_s: float) -> list[str]:
    """Lines the child printed up to and including one starting with ``wanted``."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.strip())
        if line.startswith(wanted):
            return seen
    raise AssertionError(f"child never printed {wanted!r}; it printed {seen} (exit {proc.poll()})")


@pytest.mark.parametrize("pause_after", ["offers", "price_intervals", "none"])
def test_kill_9_during_ingest_leaves_the_previous_state(
    engine: Engine, database_url: str, catalog: GpuCatalog, pause_after: str
) -> None:
    first = apply_snapshot(engine, bigsnap.snapshot(N, 0), catalog)
    assert first.outcome is Outcome.OK
    before = db_state(engine)
    assert before["prices"] == bigsnap.expected_prices(N, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.ingest_child", database_url, str(N), pause_after],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # "none": killed as soon as the first bulk write is done, wherever the ingest then is
        lines = _read_until(proc, "wrote offers" if pause_after == "none" else f"wrote {pause_after}", 120)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not any(line.startswith("committed") for line in lines)

    after_kill = db_state(engine)
    assert after_kill == before, "the killed ingest left partial data"

    # the next poll of the same snapshot succeeds, and applies it whole
    again = apply_snapshot(engine, bigsnap.snapshot(N, 1), catalog)
    assert again.outcome is Outcome.OK, again.summary()
    assert again.offers_withdrawn == N // 20
    after = db_state(engine)
    assert after["prices"] == bigsnap.expected_prices(N, 1)
    assert after["withdrawn"] == N // 20
    assert after["running"] == 0
    assert after["counts"]["poll_runs"] == before["counts"]["poll_runs"] + 1
    assert after["counts"]["offers"] == before["counts"]["offers"] + N // 20
