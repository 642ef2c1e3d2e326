from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, select

from broker.store.models import PollRun
from tests.faults.servers import write_config
from tests.polling.test_polling import OFFER

ROOT = Path(__file__).resolve().parents[2]


def test_worker_runs_the_scheduled_polls_in_the_background_and_stops_on_sigterm(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    snap = tmp_path / "snap.json"
    snap.write_text(json.dumps({"format": "gpu-broker.snapshot/v1", "complete": True, "offers": [OFFER]}))
    config = write_config(
        tmp_path / "config",
        f'[sources.files]\nkind = "file"\npath = "{snap}"\ninterval_minutes = 60\njitter_seconds = 0\n',
    )
    env = {**os.environ, "BROKER_CONFIG": str(config), "BROKER_DATABASE_URL": database_url}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from broker.cli.main import main; main()", "worker", "--background"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        outcomes: list[str] = []
        while time.monotonic() < deadline and not outcomes:
            time.sleep(0.5)
            with engine.connect() as conn:
                outcomes = list(conn.execute(select(PollRun.outcome).where(PollRun.source == "files")).scalars())
        assert outcomes == ["ok"]
        # on the CPU time nothing else wants, as asked
        assert os.sched_getscheduler(proc.pid) == os.SCHED_IDLE
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0

