"""`broker serve --workers N`: several API processes on one port, metrics summed over all of them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from broker.polling.service import poll_source
from broker.runtime import Runtime
from tests.faults.servers import ROOT, BrokerServer, write_config
from tests.polling.test_polling import OFFER, file_source

JOB = {
    "name": "w",
    "image": "ghcr.io/acme/train:1",
    "gpu": {"count": 1, "models": ["H100-PCIE"]},
    "work": {"hours": 2, "reference_gpu": "H100-PCIE"},
}


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_two_api_processes_answer_and_report_one_set_of_metrics(
    runtime: Runtime, database_url: str, tmp_path: Path
) -> None:
    poll_source(runtime, file_source(tmp_path, [OFFER]))
    config = write_config(tmp_path / "config", "")
    server = BrokerServer(config, database_url, tmp_path / "serve.log", schedule=False, name="api", workers=2)
    try:
        server.wait_healthy()
        deadline = time.monotonic() + 30
        while len(children(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(children(server.pid)) >= 2, server.log_tail()
        sent = 24
        for _ in range(sent):  # a new connection each: the processes share the listening socket
            r = httpx.post(server.url + "/v1/place", json=JOB, timeout=10)
            assert r.status_code == 200, r.text
            assert r.json()["choice"]["instance_type"] == OFFER["instance_type"]
        for _ in range(6):  # whichever process answers the scrape counts every process's requests
            text = httpx.get(server.url + "/metrics", timeout=10).text
            counted = re.search(r'^broker_http_requests_total\{method="POST",route="/v1/place",status="200"\} (\S+)$',
                                text, re.M)  # fmt: skip
            assert counted is not None and float(counted.group(1)) == sent, text[:2000]
            decisions = re.findall(r"^broker_decisions_total\{[^}]*\} (\S+)$", text, re.M)
            assert sum(float(v) for v in decisions) == sent
    finally:
        server.stop()


def listening_sockets(port: int) -> int:
    """Sockets in LISTEN state on ``port`` (IPv4), from the kernel's table."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for r in rows if r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A")


def test_each_worker_listens_on_its_own_socket_also_after_a_restart(
    runtime: Runtime, database_url: str, tmp_path: Path
) -> None:
    """SO_REUSEPORT: the kernel spreads connections over one socket per worker (a shared socket let one worker take
    most of a connection burst). A worker that dies is replaced with a socket of its own, and the dead one's
    socket stops taking connections."""
    poll_source(runtime, file_source(tmp_path, [OFFER]))
    config = write_config(tmp_path / "config", "")
    server = BrokerServer(config, database_url, tmp_path / "serve.log", schedule=False, name="api", workers=2)

    def api_processes() -> set[int]:  # not multiprocessing's resource tracker
        out = set()
        for pid in children(server.pid):
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    out.add(pid)
            except OSError:  # gone meanwhile
                pass
        return out

    def settled(workers: set[int]) -> bool:
        now = api_processes()
        return len(now) == 2 and not (now & workers) and listening_sockets(server.port) == 2

    try:
        server.wait_healthy()
        deadline = time.monotonic() + 30
        while not settled(set()) and time.monotonic() < deadline:
            time.sleep(0.2)
        first = api_processes()
        assert len(first) == 2 and listening_sockets(server.port) == 2, server.log_tail()
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not settled({victim}) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert settled({victim}), (api_processes(), listening_sockets(server.port), server.log_tail())
        for _ in range(24):  # new connections each: every one lands on a live worker's socket
            r = httpx.post(server.url + "/v1/place", json=JOB, timeout=10)
            assert r.status_code == 200, r.text
    finally:
        server.stop()


def test_workers_need_the_polls_elsewhere(database_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", "")
    env = {**os.environ, "BROKER_CONFIG": str(config), "BROKER_DATABASE_URL": database_url}
    cmd = [sys.executable, "-c", "from broker.cli.main import main; main()", "serve", "--workers", "2"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "error: --workers serves the API only: add --no-schedule and run the polls with `broker worker`"
    ]
