"""Load test: a fixed request rate against ``broker serve`` on loopback while a large poll is ingested.

    .venv/bin/python bench/load.py [--endpoint place|offers] [--rate 1000] [--duration 60] [--connections 64]
                                   [--offers 100000] [--database-url URL] [--url http://127.0.0.1:PORT]
                                   [--poll-every 20] [--separate-poller] [--workers N]
                                   [--poller-priority background|normal]

Without ``--url`` it runs its own server: a temporary config with one ``file`` source of ``--offers`` offers,
the database migrated and seeded with that universe, then ``broker serve`` with the scheduler on. The scheduler
polls the file at start and every ``--poll-every`` seconds; between polls a thread rewrites the file with a third
of the prices changed and 5% of offers replaced, so every poll writes. The load runs meanwhile.

The load is open-loop (requests are due at a fixed rate whether or not earlier ones finished) over keep-alive
HTTP/1.1 connections, and latency is measured from when a request was *due*, so a stalled server shows up in the
percentiles instead of silently lowering the rate. Prints throughput, p50/p90/p99/max, errors, the polls that
ran during the load, and per process (server, poller, generator) its share of a core and how long it waited for
one (Linux schedstat: on a machine the generator shares, waiting for a core is where latency comes from). Loopback
only; the run is bounded by ``--duration`` (and a hard stop 30 s after it).
``--separate-poller`` runs the polls in ``broker worker`` and the API with ``--no-schedule`` (the production
layout), by default with ``--background`` as the README's one-machine layout runs it; ``--workers N`` serves with
``broker serve --workers N`` (N API processes on the port). The file rewrites (the "provider") run in a process of
their own on idle CPU time only: a real provider's API would not share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httptools
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from broker.domain import utcnow  # noqa: E402
from broker.gpus import GpuCatalog  # noqa: E402
from broker.store import migrate  # noqa: E402
from broker.store.db import make_engine  # noqa: E402
from broker.store.ingest import apply_snapshot  # noqa: E402
from tests.faults import bigsnap  # noqa: E402
from tests.faults.servers import free_port, write_config, write_json_atomic  # noqa: E402

PLACE_BODY = {
    "name": "bench",
    "image": "nvcr.io/nvidia/pytorch:24.05-py3",
    "gpu": {"count": 8, "models": ["H100", "A100-80GB", "H200"]},
    "work": {"hours": 24, "reference_gpu": "H100-SXM"},
    "alternatives": 3,
}


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)  # from due time to response end (seconds)
    service: list[float] = field(default_factory=list)  # from send to response end
    due: list[float] = field(default_factory=list)  # when each answered request was due (Unix time)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def loopback_only(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    ok = host == "localhost"
    if not ok:
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = False
    if not ok or parts.scheme != "http":
        raise SystemExit(f"refusing {url}: the load test targets http:// on loopback only")
    return host, parts.port or 80


def build_request(host: str, port: int, method: str, path: str, body: bytes, api_key: str | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive", "Accept: */*"]
    if api_key:
        lines.append(f"Authorization: Bearer {api_key}")
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the generator, parsed by httptools (in C): the generator shares the
    machine with the server, so its own cost per request is kept small (a StreamReader and a task per timeout
    cost about twice as much)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("connection closed"))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def request(self, payload: bytes, timeout: float) -> int:
        assert self.transport is not None
        if self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        async with asyncio.timeout(timeout):
            return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def run_load(
    host: str, port: int, request: bytes, rate: float, duration: float, connections: int
) -> tuple[Stats, float, int]:
    stats = Stats()
    total = int(rate * duration)
    next_ticket = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2
    unix = time.time() - loop.time()  # loop clock -> wall clock, to line slow seconds up with polls
    hard_stop = t0 + duration + 30

    async def worker() -> None:
        nonlocal next_ticket
        conn: Connection | None = None
        while True:
            i = next_ticket
            if i >= total or loop.time() > hard_stop:
                break
            next_ticket += 1
            due = t0 + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                if conn is None:
                    _, conn = await loop.create_connection(Connection, host, port)
                sent = loop.time()
                status = await conn.request(request, timeout=10)
                end = loop.time()
                stats.latencies.append(end - due)
                stats.service.append(end - sent)
                stats.due.append(due + unix)
                stats.statuses[status] += 1
                if status >= 400:
                    stats.errors[f"HTTP {status}"] += 1
            except (OSError, TimeoutError, ValueError, httptools.HttpParserError) as exc:
                stats.errors[type(exc).__name__] += 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return stats, loop.time() - t0, total


_ROLES = (("spawn_main", "API process"), ("resource_tracker", "multiprocessing tracker"),
          (" worker", "broker worker"), (" serve", "broker serve"))  # fmt: skip


def process_tree(pid: int) -> dict[int, str]:
    """``pid`` and its descendants (Linux /proc), with a short name each."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, todo = {}, [pid]
    while todo:
        p = todo.pop()
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        tree[p] = next((name for mark, name in _ROLES if mark in cmd), cmd[:60]) + f" [{p}]"
        todo += [c for c, parent in parents.items() if parent == p]
    return tree


def cpu_times(pids: list[int]) -> dict[int, tuple[float, float]]:
    """Per process: CPU seconds (threads that ended included), and seconds its live threads were runnable but
    waiting for a CPU (a thread that ends takes its share along: an estimate)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        wait = 0
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            for task in Path(f"/proc/{pid}/task").iterdir():
                wait += int((task / "schedstat").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[pid] = ((int(fields[11]) + int(fields[12])) / tick, wait / 1e9)
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def slow_seconds(stats: Stats, top: int = 5) -> list[str]:
    """The seconds whose requests fared worst, in time order: lines stalls up with the polls listed below."""
    by_second: dict[int, list[float]] = {}
    for due, latency in zip(stats.due, stats.latencies, strict=True):
        by_second.setdefault(int(due), []).append(latency)
    worst = sorted(by_second, key=lambda s: pct(by_second[s], 0.99), reverse=True)[:top]
    return [f"{time.strftime('%H:%M:%S', time.gmtime(s))} {pct(by_second[s], 0.99):.0f} ms" for s in sorted(worst)]


def timeline(stats: Stats, events: list[tuple[float, str]]) -> list[str]:
    """Every second of the run: its requests' p99 and max, and what the server did in it (``events``: Unix time,
    what happened)."""
    by_second: dict[int, list[float]] = {}
    for due, latency in zip(stats.due, stats.latencies, strict=True):
        by_second.setdefault(int(due), []).append(latency)
    marks: dict[int, list[str]] = {}
    for at, what in events:
        marks.setdefault(int(at), []).append(what)
    lines = []
    for s in sorted(by_second):
        v = by_second[s]
        lines.append(f"  {time.strftime('%H:%M:%S', time.gmtime(s))} p99 {pct(v, 0.99):5.0f} ms  max {pct(v, 1.0):5.0f}"
                     f" ms  {'; '.join(marks.get(s, []))}")  # fmt: skip
    return lines


def _idle_priority() -> None:
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def write_snapshot(path: Path, offers: int, version: int) -> None:
    doc = bigsnap.snapshot_json(offers, version)
    # no taken_at: as from a live provider API, a poll sees the prices as of when it runs, so a poll that finds
    # the file unchanged confirms its prices (the file's own time would age towards staleness between writes)
    del doc["taken_at"]
    write_json_atomic(path, doc)


class OwnServer:
    """A `broker serve` with one big file source, polled at start and every ``poll_every`` seconds."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="broker-load-"))
        self.database_url = args.database_url or f"sqlite:///{self.dir / 'broker.db'}"
        self.offers = args.offers
        self.snap = self.dir / "snap.json"
        sources = (
            f'[sources.{bigsnap.SOURCE}]\nkind = "file"\npath = "{self.snap}"\n'
            f"interval_minutes = {(args.poll_every or 3600) / 60}\njitter_seconds = 0\ntimeout_seconds = 300\n"
        )
        self.config = write_config(self.dir / "config", sources, index_refresh_seconds=1)
        self.port = free_port()
        self._stop = threading.Event()
        self._poll_every = args.poll_every
        self.proc: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.workers = int(args.workers)
        self.poller_background = args.poller_priority == "background"
        self.polling = args.poll_every > 0
        self.separate_poller = bool(args.separate_poller) or self.workers > 1 or not self.polling
        self.log: Any = None

    def start(self) -> None:
        engine = make_engine(self.database_url)
        migrate.upgrade(engine)
        started = time.monotonic()
        snap = bigsnap.snapshot(self.offers, 0)
        snap.taken_at = utcnow()
        apply_snapshot(engine, snap, GpuCatalog.load(self.config.parent / "gpus.toml"))
        engine.dispose()
        print(f"seeded {self.offers} offers in {time.monotonic() - started:.1f} s ({self.database_url})")
        write_snapshot(self.snap, self.offers, 1)
        env = {**os.environ, "BROKER_CONFIG": str(self.config), "BROKER_DATABASE_URL": self.database_url,
               "BROKER_DATA_DIR": str(self.dir)}  # fmt: skip
        broker = [sys.executable, "-c", "from broker.cli.main import main; main()"]
        cmd = [*broker, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.separate_poller:  # polls in their own process: ingest never holds the API's interpreter
            cmd.append("--no-schedule")
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        self.log = (self.dir / "server.log").open("wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        if self.separate_poller and self.polling:
            background = ["--background"] if self.poller_background else []
            self.worker = subprocess.Popen([*broker, "worker", *background], cwd=ROOT, env=env, stdout=self.log,
                                           stderr=subprocess.STDOUT)  # fmt: skip
        self._wait_healthy()
        if self.polling:
            threading.Thread(target=self._rewrite_loop, daemon=True).start()

    def _rewrite_loop(self) -> None:
        # the "provider" builds its 23 MB answers in a process of its own: in this one, it would stall the load
        # generator's event loop, and the stall would count as server latency
        # on idle CPU time only: a real provider's API is not on this machine, so let it take only what is left
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=spawn, initializer=_idle_priority) as provider:
            version = 0
            while not self._stop.wait(self._poll_every * 0.8):
                provider.submit(write_snapshot, self.snap, self.offers, version).result()
                version = 1 - version

    def _wait_healthy(self) -> None:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: see {self.dir / 'server.log'}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("server not healthy after 60 s")

    def polls(self, since: Any) -> list[Any]:
        from sqlalchemy import or_, select

        from broker.store.models import PollRun, table

        runs = table(PollRun)
        engine = make_engine(self.database_url)
        with engine.connect() as conn:
            rows = list(
                conn.execute(
                    select(runs)
                    .where(or_(runs.c.started_at >= since, runs.c.finished_at >= since, runs.c.finished_at.is_(None)))
                    .order_by(runs.c.started_at)
                )
            )
        engine.dispose()
        return rows

    def events(self, since: Any) -> list[tuple[float, str]]:
        """The polls (start, commit) and the API processes' index reloads (start, end), from the run table and the
        server's log."""
        out = []
        for p in self.polls(since):
            out.append((p.started_at.timestamp(), f"poll {p.id} starts"))
            if p.finished_at:
                out.append((p.finished_at.timestamp(), f"poll {p.id} {p.outcome}"))
        for line in (self.dir / "server.log").read_text(errors="replace").splitlines():
            if "offer index reloaded" not in line:
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            end = datetime.fromisoformat(doc["ts"]).timestamp()
            out.append((end - doc["seconds"], "reload starts"))
            out.append((end, f"reload ends ({doc['cpu_seconds']:.2f} s CPU)"))
        return sorted(out)

    def stop(self) -> None:
        self._stop.set()
        for proc in (self.proc, self.worker):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
        if self.log is not None:
            self.log.close()
        if os.environ.get("BROKER_LOAD_KEEP"):
            print(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running broker on loopback (default: start one)")
    ap.add_argument("--endpoint", choices=["place", "offers"], default="place")
    ap.add_argument("--body-file", type=Path, help="JSON body for POST /v1/place (default: a built-in job)")
    ap.add_argument("--rate", type=float, default=1000, help="requests per second (open loop)")
    ap.add_argument("--duration", type=float, default=60, help="seconds of load")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--offers", type=int, default=100_000, help="offers in the polled snapshot (own server)")
    ap.add_argument(
        "--poll-every", type=float, default=20, help="seconds between scheduled polls (own server; 0: no polls)"
    )
    ap.add_argument("--database-url", help="own server's database (default: a temporary SQLite file)")
    ap.add_argument(
        "--separate-poller",
        action="store_true",
        help="own server: polls run in a `broker worker` process, the API with --no-schedule",
    )
    ap.add_argument(
        "--workers", type=int, default=1, help="own server: API processes (serve --workers; implies --separate-poller)"
    )
    ap.add_argument(
        "--poller-priority",
        choices=["background", "normal"],
        default="background",
        help="own server: `broker worker --background` (the README's one-machine layout) or at the API's priority",
    )
    ap.add_argument("--timeline", action="store_true", help="print every second's p99 and what the server did")
    ap.add_argument("--api-key", default=os.environ.get("BROKER_API_KEY"), help="sent as a Bearer token")
    args = ap.parse_args()
    if not (0 < args.rate <= 20_000 and 0 < args.duration <= 600 and 0 < args.connections <= 512):
        raise SystemExit("bounds: rate <= 20000/s, duration <= 600 s, connections <= 512")

    own = None if args.url else OwnServer(args)
    try:
        if own is not None:
            own.start()
            url = f"http://127.0.0.1:{own.port}"
        else:
            url = args.url
        host, port = loopback_only(url)
        if args.endpoint == "place":
            body = args.body_file.read_bytes() if args.body_file else json.dumps(PLACE_BODY).encode()
            request = build_request(host, port, "POST", "/v1/place", body, args.api_key)
        else:
            request = build_request(host, port, "GET", "/v1/offers?gpu=H100&limit=20", b"", args.api_key)
        since = utcnow()
        print(f"load: {args.endpoint} at {args.rate:.0f}/s for {args.duration:.0f} s over {args.connections} "
              f"connections against {url}")  # fmt: skip
        # who used the cores during the load: the server's processes and this generator (Linux only)
        watched = {os.getpid(): "load generator"}
        for proc in (own.proc, own.worker) if own is not None else ():
            if proc is not None:
                watched.update(process_tree(proc.pid))
        before, started = cpu_times(list(watched)), time.monotonic()
        # uvloop (installed with uvicorn) keeps the generator's own share of the cores small, as wrk would
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            stats, elapsed, due = runner.run(run_load(host, port, request, args.rate, args.duration, args.connections))
        after, wall = cpu_times(list(watched)), time.monotonic() - started
        done = len(stats.latencies)
        print(f"requests due {due}, answered {done} in {elapsed:.1f} s: {done / elapsed:.0f}/s")
        print(f"status {dict(sorted(stats.statuses.items()))}; errors {dict(stats.errors) or 0}")
        print(
            f"latency from due time (ms): p50 {pct(stats.latencies, 0.50):.1f}  p90 {pct(stats.latencies, 0.90):.1f}"
            f"  p99 {pct(stats.latencies, 0.99):.1f}  max {pct(stats.latencies, 1.0):.1f}"
        )
        print(
            f"service time (ms):          p50 {pct(stats.service, 0.50):.1f}  p90 {pct(stats.service, 0.90):.1f}"
            f"  p99 {pct(stats.service, 0.99):.1f}  mean {statistics.fmean(stats.service or [0]) * 1000:.1f}"
        )
        slowest = slow_seconds(stats)
        if slowest:
            print("slowest seconds (p99 of the requests due in each): " + ", ".join(slowest))
        for pid, (run, wait) in after.items():
            if pid in before and (used := run - before[pid][0]) > 0.01 * wall:
                queued = max(wait - before[pid][1], 0.0)
                print(f"  cpu {used / wall:6.1%} of a core, waited for one {queued / wall * 1000:5.0f} ms/s: "
                      f"{watched[pid]}")  # fmt: skip
        if own is not None:
            polls = own.polls(since)
            print(f"polls during the load: {len(polls)}")
            for p in polls:
                took = (p.finished_at - p.started_at).total_seconds() if p.finished_at else float("nan")
                print(f"  {p.started_at:%H:%M:%S} {p.outcome:8} {p.offers_seen} offers, {p.prices_changed} "
                      f"prices changed, {took:.1f} s")  # fmt: skip
        if args.timeline:
            print("timeline:")
            print("\n".join(timeline(stats, own.events(since) if own is not None else [])))
    finally:
        if own is not None:
            own.stop()


if __name__ == "__main__":
    main()
