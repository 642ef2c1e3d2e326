"""The database going away and coming back, seen by a running replica: requests that need the database get a clear
503 problem meanwhile, the rest keep working from the in-memory index, and the service recovers by itself.

The replica reaches PostgreSQL through a TCP proxy the test cuts and restores (restarting the shared server is too
disruptive on a shared machine)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from broker.gpus import GpuCatalog
from broker.store.ingest import apply_snapshot
from tests.faults import bigsnap
from tests.faults.proxy import TcpProxy
from tests.faults.servers import BrokerServer, write_config

N = 500


@pytest.fixture
def proxy(database_url: str) -> Iterator[TcpProxy]:
    if not database_url.startswith("postgresql"):
        pytest.skip("the database outage test needs a networked database; the suite's database is SQLite")
    url = make_url(database_url)
    p = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    yield p
    p.close()


@pytest.fixture
def server(tmp_path: Path, database_url: str, proxy: TcpProxy, engine: Engine) -> Iterator[BrokerServer]:
    url = make_url(database_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    config = write_config(tmp_path / "config", "")
    s = BrokerServer(config, url, tmp_path / "server.log", schedule=False, name="replica")
    try:
        s.wait_healthy()
        yield s
    finally:
        s.stop()


def _get(server: BrokerServer, path: str, **params: Any) -> httpx.Response:
    started = time.monotonic()
    r = httpx.get(server.url + path, params=params, timeout=15)
    took = time.monotonic() - started
    assert took < 10, f"{path} took {took:.1f} s: a dead database must not hang requests"
    return r


def _until(what: str, check: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _assert_db_problem(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 503
    assert body["type"].endswith(("/database-unavailable", "/not-ready")), body
    assert body["detail"]


def test_requests_get_503_while_the_database_is_away_and_recover_by_themselves(
    engine: Engine, catalog: GpuCatalog, proxy: TcpProxy, server: BrokerServer
) -> None:
    apply_snapshot(engine, bigsnap.snapshot(N, 0), catalog)
    _until("the replica to load the offers", lambda: _get(server, "/v1/offers", limit=1).json()["total"] == N, 15)
    assert _get(server, "/readyz").status_code == 200
    assert _get(server, "/v1/providers").status_code == 200

    proxy.cut()
    for _ in range(3):  # repeatedly: every attempt fails cleanly, none hangs or turns into a 500
        _assert_db_problem(_get(server, "/v1/providers"))
        ready = _get(server, "/readyz")
        _assert_db_problem(ready)
        assert ready.json()["checks"]["database"].startswith("unreachable")
        assert _get(server, "/healthz").status_code == 200  # alive: an orchestrator must not restart it for this
        offers = _get(server, "/v1/offers", limit=1)  # served from the last index: nothing lost
        assert offers.status_code == 200
        assert offers.json()["total"] == N
        time.sleep(0.5)

    proxy.restore()
    _until("readiness to come back", lambda: _get(server, "/readyz").status_code == 200, 20)
    assert _get(server, "/v1/providers").status_code == 200

    # the background index refresh recovered too: a poll recorded after the outage reaches the replica
    apply_snapshot(engine, bigsnap.snapshot(N, 1), catalog)
    expected = len(bigsnap.expected_prices(N, 1))
    _until("the new offers", lambda: _get(server, "/v1/offers", limit=1).json()["total"] == expected, 20)
