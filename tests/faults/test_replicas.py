"""Two ``broker serve`` replicas on one PostgreSQL: each scheduled poll runs once per interval, both replicas
answer the same after a poll, and a replica killed mid-poll leaves no partial data while the other completes the
poll once the dead one's lease has expired."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from broker.domain import utcnow
from tests.faults import bigsnap
from tests.faults.servers import BrokerServer, write_config, write_json_atomic

INTERVAL_S = 3.0  # interval_minutes = 0.05
SMALL = 300
N_BIG = 50_000  # big enough that a poll takes seconds: the kill lands inside it


@pytest.fixture
def pg_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip(
            "several replicas share one PostgreSQL; the suite's database is SQLite (set BROKER_TEST_DATABASE_URL)"
        )
    return database_url


def _sources(path: Path, interval_s: float, timeout_s: float) -> str:
    return (
        f'[sources.{bigsnap.SOURCE}]\nkind = "file"\npath = "{path}"\n'
        f"interval_minutes = {interval_s / 60}\njitter_seconds = 0\ntimeout_seconds = {timeout_s}\nmax_attempts = 1\n"
    )


def _doc(n: int, version: int) -> dict[str, Any]:
    return bigsnap.snapshot_json(n, version, taken_at=utcnow().replace(microsecond=0))


@pytest.fixture
def replicas(pg_url: str, engine: Engine) -> Iterator[list[BrokerServer]]:
    """The replicas ``start`` launches (on emptied tables), stopped after the test whatever happens."""
    started: list[BrokerServer] = []
    yield started
    for server in started:
        server.stop()


def start(replicas: list[BrokerServer], tmp_path: Path, url: str, interval_s: float, timeout_s: float) -> Path:
    snap = tmp_path / "snap.json"
    config = write_config(tmp_path / "config", _sources(snap, interval_s, timeout_s))
    for i in (1, 2):
        replicas.append(BrokerServer(config, url, tmp_path / f"replica{i}.log", schedule=True, name=f"replica{i}"))
    for r in replicas:
        r.wait_healthy()
    return snap


def runs(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT id, started_at, finished_at, outcome, offers_seen, snapshot_taken_at FROM poll_runs "
                    "WHERE source = :s ORDER BY started_at"
                ),
                {"s": bigsnap.SOURCE},
            )
        )


def lease(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT holder, acquired_at, expires_at FROM leases WHERE name = :n"), {"n": f"poll:{bigsnap.SOURCE}"}
        ).first()


def wait_for(what: str, check: Any, timeout_s: float, every_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def test_each_poll_runs_once_per_interval_and_replicas_agree(
    replicas: list[BrokerServer], tmp_path: Path, pg_url: str, engine: Engine
) -> None:
    snap_path = tmp_path / "snap.json"
    write_json_atomic(snap_path, _doc(SMALL, 0))
    start(replicas, tmp_path, pg_url, INTERVAL_S, timeout_s=30)
    wait_for("a first poll", lambda: runs(engine), 30)

    window_s = 8 * INTERVAL_S
    t0 = utcnow()
    time.sleep(window_s)
    t1 = utcnow()
    inside = [r for r in runs(engine) if t0 <= _aware(r.started_at) < t1]
    starts = [_aware(r.started_at) for r in inside]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    expected = window_s / INTERVAL_S
    assert all(r.outcome == "ok" for r in inside), inside
    assert expected - 1.5 <= len(inside) <= expected + 1, f"{len(inside)} polls in {window_s} s; gaps {gaps}"
    assert min(gaps) >= 0.5 * INTERVAL_S, f"two polls in one interval: gaps {gaps}"

    # new prices: after the next poll both replicas answer with them, and with the same answer, within seconds
    doc = _doc(SMALL, 1)
    write_json_atomic(snap_path, doc)
    taken = datetime.fromisoformat(str(doc["taken_at"]).replace("Z", "+00:00"))
    polled = wait_for(
        "a poll of the new file",
        lambda: [r for r in runs(engine) if r.snapshot_taken_at and _aware(r.snapshot_taken_at) == taken],
        6 * INTERVAL_S,
    )
    done = _aware(polled[0].finished_at)
    expected_prices = bigsnap.expected_prices(SMALL, 1)

    def answers() -> list[dict[str, Decimal]]:
        out = []
        for r in replicas:
            body = httpx.get(r.url + "/v1/offers", params={"limit": 1000}, timeout=5).json()
            out.append({o["instance_type"]: Decimal(str(o["hourly_usd"])) for o in body["items"]})
        return out

    same = wait_for("both replicas to serve the new prices", lambda: all(a == expected_prices for a in answers()), 15)
    assert same
    lag = (utcnow() - done).total_seconds()
    assert lag < 10, f"replicas agreed only {lag:.1f} s after the poll"


def test_replica_killed_mid_poll_leaves_nothing_and_the_other_completes_after_lease_expiry(
    replicas: list[BrokerServer], tmp_path: Path, pg_url: str, engine: Engine
) -> None:
    interval_s, timeout_s = 15.0, 8.0
    snap_path = tmp_path / "snap.json"
    write_json_atomic(snap_path, {**_doc(0, 0), "offers": []})
    start(replicas, tmp_path, pg_url, interval_s, timeout_s)
    first = wait_for("the first (empty) poll", lambda: runs(engine), 30)
    first_lease = lease(engine)
    big = N_BIG
    write_json_atomic(snap_path, _doc(big, 0))

    # the next poll: whoever takes the lease is killed as soon as it holds it
    taken = wait_for(
        "the next lease acquisition",
        lambda: (row := lease(engine)) is not None and row.acquired_at > first_lease.acquired_at and row,
        interval_s * 3,
        every_s=0.02,
    )
    pid = int(taken.holder.rsplit(":", 1)[1])
    victim = next(r for r in replicas if r.pid == pid)
    survivor = next(r for r in replicas if r.pid != pid)
    victim.kill()
    killed_at = utcnow()
    assert len(runs(engine)) == len(first), "the victim's poll finished before it was killed: make it bigger"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM offers")).scalar_one() == 0

    expires = _aware(taken.expires_at)
    done = wait_for(
        "the survivor to complete the poll",
        lambda: [r for r in runs(engine) if r.offers_seen == big and r.outcome == "ok" and r.finished_at],
        (expires - killed_at).total_seconds() + 2 * interval_s + 60,
        every_s=0.5,
    )
    assert _aware(done[0].started_at) >= expires - timedelta(seconds=1), "the lease was taken before it expired"
    assert lease(engine).holder.endswith(f":{survivor.pid}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM offers")).scalar_one() == big
        assert conn.execute(text("SELECT COUNT(*) FROM poll_runs WHERE outcome = 'running'")).scalar_one() == 0
    assert httpx.get(survivor.url + "/readyz", timeout=5).status_code == 200
