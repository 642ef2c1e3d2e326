"""Real ``broker serve`` processes for the fault tests: free loopback ports, a config directory, clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
SHARED_CONFIG = ("gpus.toml", "placement.toml", "egress.toml", "ratecards")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(directory: Path, sources: str, *, index_refresh_seconds: float = 0.5) -> Path:
    """A config directory: the project's catalog and placement files beside a test broker.toml.

    Auth is off: these servers listen on loopback only and the tests are about the database, not keys."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in SHARED_CONFIG:
        if (ROOT / "config" / name).exists() and not (directory / name).exists():
            (directory / name).symlink_to(ROOT / "config" / name)
    config = directory / "broker.toml"
    config.write_text(
        "[server]\n"
        "auth = false\nrate_limit_per_second = 0\n"
        f"index_refresh_seconds = {index_refresh_seconds}\n\n"
        '[placement]\nconfig_path = "placement.toml"\negress_path = "egress.toml"\n\n' + sources,
        encoding="utf-8",
    )
    return config


def write_json_atomic(path: Path, doc: Mapping[str, Any]) -> None:
    """Write then rename, so a poll never reads half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)


class BrokerServer:
    """``broker serve`` in a subprocess on 127.0.0.1; output goes to a log file (read it when a test fails)."""

    def __init__(
        self, config: Path, database_url: str, log: Path, *, schedule: bool, name: str, workers: int = 1
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = name
        self.log_path = log
        # the `broker` command, run by this interpreter (the venv's console script may not be on PATH)
        args = [sys.executable, "-c", "from broker.cli.main import main; main()"]
        args += ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if not schedule:
            args.append("--no-schedule")
        if workers > 1:
            args += ["--workers", str(workers)]
        env = {
            **os.environ,
            "BROKER_CONFIG": str(config),
            "BROKER_DATABASE_URL": database_url,
            "BROKER_DATA_DIR": str(log.parent),
            "BROKER_LOG_LEVEL": "warning",
        }
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_healthy(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not healthy after {timeout_s} s: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no lease release (a crashed replica, its API processes included)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
