"""What one ``POST /v1/place`` costs an API process in CPU, network aside: the whole app (middlewares, auth guard,
validation, placement, launch specs, the answer's encoding, the access log, metrics, the decision log) driven
in-process through its ASGI interface, over a database seeded with ``--offers`` offers.

    .venv/bin/python bench/request.py [--offers 100000] [--requests 5000] [--profile]

Prints CPU microseconds per request: the serving thread's, and the whole process's (the access-log writer and the
decision writer are threads of the same process). CPU time, not wall time, so that the figure holds steady on a
shared machine; at a rate of R requests/s an API process needs about R x (process figure) of a core, plus the
network stack's share (bench/load.py measures that end to end). ``--profile`` prints the serving thread's top
functions (cProfile: it inflates Python-heavy code more than C).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from load import PLACE_BODY  # noqa: E402  (this script's folder: the load test's job)

from tests.faults import bigsnap  # noqa: E402
from tests.faults.servers import write_config  # noqa: E402


def seed(work: Path, offers: int) -> None:
    config = write_config(
        work / "config", f'[sources.{bigsnap.SOURCE}]\nkind = "file"\npath = "{work / "none.json"}"\n'
    )
    os.environ.update(
        BROKER_CONFIG=str(config), BROKER_DATABASE_URL=f"sqlite:///{work / 'broker.db'}", BROKER_DATA_DIR=str(work)
    )
    from broker.domain import utcnow
    from broker.gpus import GpuCatalog
    from broker.store import migrate
    from broker.store.db import make_engine
    from broker.store.ingest import apply_snapshot

    engine = make_engine(os.environ["BROKER_DATABASE_URL"])
    migrate.upgrade(engine)
    snap = bigsnap.snapshot(offers, 0)
    snap.taken_at = utcnow()
    apply_snapshot(engine, snap, GpuCatalog.load(config.parent / "gpus.toml"))
    engine.dispose()


async def drive(app: Any, requests: int, profile: bool) -> tuple[float, float]:
    body = json.dumps(PLACE_BODY).encode()
    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]  # fmt: skip
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/place", "raw_path": b"/v1/place", "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def one() -> None:
        status: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app({**scope, "state": {}}, receive, send)
        if status != [200]:
            raise SystemExit(f"POST /v1/place answered {status}")

    for _ in range(500):  # warm: first requests of a shape fill the placement caches
        await one()
    profiler = cProfile.Profile() if profile else None
    thread, process = time.thread_time(), time.process_time()
    if profiler is not None:
        profiler.enable()
    for _ in range(requests):
        await one()
    if profiler is not None:
        profiler.disable()
    thread, process = time.thread_time() - thread, time.process_time() - process
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return thread / requests, process / requests


async def run(requests: int, profile: bool) -> tuple[float, float]:
    from broker.api.app import create_app

    app = create_app()
    startup: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})

    async def lifespan_send(message: dict[str, Any]) -> None:
        await answers.put(message)

    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                       startup.get, lifespan_send))  # fmt: skip
    started = await answers.get()
    if started["type"] != "lifespan.startup.complete":
        raise SystemExit(f"start failed: {started}")
    try:
        return await drive(app, requests, profile)
    finally:
        await startup.put({"type": "lifespan.shutdown"})
        await lifespan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--offers", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="broker-request-"))
    try:
        seed(work, args.offers)
        # the access log goes where a server's would; here it would only cost terminal time
        log = os.open(os.devnull, os.O_WRONLY)
        saved = os.dup(2)
        os.dup2(log, 2)
        try:
            import uvloop

            from broker.observability.logging import configure_service_logging

            configure_service_logging()
            thread, process = uvloop.run(run(args.requests, args.profile))
        finally:
            os.dup2(saved, 2)
        print(f"{args.offers} offers, {args.requests} requests of POST /v1/place in-process")
        print(f"CPU per request: serving thread {thread * 1e6:.0f} us, whole process {process * 1e6:.0f} us")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
