from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from broker.domain import Outcome, utcnow
from broker.polling import lease
from broker.polling.scheduler import PollScheduler
from broker.polling.service import poll_source
from broker.polling.skipped import Skipped
from broker.runtime import Runtime
from broker.settings import SourceConfig
from broker.store.models import PollRun


def file_source(tmp_path: Path, offers: list[dict[str, object]], **kw: object) -> SourceConfig:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps({"format": "gpu-broker.snapshot/v1", "complete": True, "offers": offers}))
    return SourceConfig(
        name="files",
        kind="file",
        enabled=True,
        interval_minutes=15,
        jitter_seconds=0,
        timeout_seconds=float(kw.get("timeout", 30)),
        max_attempts=int(kw.get("attempts", 1)),
        options={"path": str(path)},
    )


OFFER = {
    "provider": "lambda",
    "region": "us-east-1",
    "instance_type": "gpu_1x_h100_pcie",
    "purchase": "on_demand",
    "gpu": "H100-PCIE",
    "gpu_count": 1,
    "hourly_usd": "2.49",
}


def runs(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [
            (r.source, r.outcome) for r in conn.execute(select(PollRun.source, PollRun.outcome).order_by(PollRun.id))
        ]


def test_poll_file_source_and_index_refresh(runtime: Runtime, tmp_path: Path) -> None:
    result = poll_source(runtime, file_source(tmp_path, [OFFER]))
    assert not isinstance(result, Skipped)
    assert result.outcome is Outcome.OK
    assert [o.key.instance_type for o in runtime.index.current.offers] == ["gpu_1x_h100_pcie"]


def test_a_poller_that_serves_nothing_leaves_the_index_alone(runtime: Runtime, tmp_path: Path) -> None:
    """`broker worker` ingests only: the API processes rebuild their own indexes when they see the poll."""
    result = poll_source(runtime, file_source(tmp_path, [OFFER]), refresh_index=False)
    assert not isinstance(result, Skipped)
    assert result.outcome is Outcome.OK
    assert not runtime.index.loaded
    assert runtime.index.refresh_if_changed()  # what an API process's refresher does next
    assert [o.key.instance_type for o in runtime.index.current.offers] == ["gpu_1x_h100_pcie"]


def test_bad_rows_are_counted_and_the_rest_applied(runtime: Runtime, tmp_path: Path) -> None:
    bad = {**OFFER, "instance_type": "gpu_8x", "hourly_usd": "0"}
    missing = {k: v for k, v in OFFER.items() if k != "gpu"}
    result = poll_source(runtime, file_source(tmp_path, [OFFER, bad, missing]))
    assert not isinstance(result, Skipped)
    assert result.outcome is Outcome.PARTIAL
    assert result.rejected == {"price <= 0": 1, "missing field gpu": 1}


def test_malformed_file_fails_cleanly_and_keeps_prices(runtime: Runtime, tmp_path: Path) -> None:
    cfg = file_source(tmp_path, [OFFER])
    poll_source(runtime, cfg)
    Path(cfg.options["path"]).write_text("{not json")
    result = poll_source(runtime, cfg)
    assert not isinstance(result, Skipped)
    assert result.outcome is Outcome.FAILED
    assert "cannot read it as JSON" in (result.error or "")
    assert len(runtime.index.current.offers) == 1
    assert runs(runtime.engine) == [("files", "ok"), ("files", "failed")]


def test_a_hung_source_times_out(runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.file_snapshot import FileSnapshotSource

    release = threading.Event()
    monkeypatch.setattr(FileSnapshotSource, "fetch", lambda self: release.wait(10))
    started = time.monotonic()
    result = poll_source(runtime, file_source(tmp_path, [OFFER], timeout=1))
    release.set()
    assert not isinstance(result, Skipped)
    assert result.outcome is Outcome.FAILED
    assert "timed out after 1 s" in (result.error or "")
    assert time.monotonic() - started < 5


def test_a_crashing_adapter_is_recorded_not_raised(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters.file_snapshot import FileSnapshotSource

    def boom(self: object) -> None:
        raise KeyError("Prices")

    monkeypatch.setattr(FileSnapshotSource, "fetch", boom)
    result = poll_source(runtime, file_source(tmp_path, [OFFER]))
    assert not isinstance(result, Skipped)
    assert result.outcome is Outcome.FAILED
    assert "internal error: KeyError" in (result.error or "")


def test_transient_errors_are_retried_with_backoff(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters.file_snapshot import FileSnapshotSource
    from broker.domain import TransientSourceError

    real = FileSnapshotSource.fetch
    calls: list[int] = []

    def flaky(self: FileSnapshotSource):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) < 3:
            raise TransientSourceError("HTTP 503")
        return real(self)

    monkeypatch.setattr(FileSnapshotSource, "fetch", flaky)
    waits: list[float] = []
    result = poll_source(runtime, file_source(tmp_path, [OFFER], attempts=3), sleep=waits.append)
    assert not isinstance(result, Skipped)
    assert result.outcome is Outcome.OK
    assert waits == [2.0, 4.0]


def test_missing_credentials_are_a_skip_with_reason(runtime: Runtime) -> None:
    cfg = SourceConfig(
        name="lambda",
        kind="lambda",
        enabled=True,
        interval_minutes=10,
        jitter_seconds=0,
        timeout_seconds=10,
        max_attempts=1,
        options={},
    )
    result = poll_source(runtime, cfg)
    assert isinstance(result, Skipped)
    assert "LAMBDA_API_KEY" in result.reason


def test_lease_is_exclusive_until_it_expires(engine: Engine) -> None:
    now = utcnow()
    assert lease.acquire(engine, "poll:x", "replica-a", timedelta(seconds=30), now=now)
    assert not lease.acquire(engine, "poll:x", "replica-b", timedelta(seconds=30), now=now + timedelta(seconds=10))
    assert lease.acquire(engine, "poll:x", "replica-a", timedelta(seconds=30), now=now + timedelta(seconds=10))
    # replica-a died: its lease expires and replica-b takes over
    assert lease.acquire(engine, "poll:x", "replica-b", timedelta(seconds=30), now=now + timedelta(seconds=60))
    lease.release(engine, "poll:x", "replica-b")
    assert lease.acquire(engine, "poll:x", "replica-a", timedelta(seconds=30), now=now + timedelta(seconds=61))


def test_two_schedulers_poll_once_per_interval(runtime: Runtime, tmp_path: Path) -> None:
    cfg = file_source(tmp_path, [OFFER])
    a = PollScheduler(runtime, holder="replica-a")
    b = PollScheduler(runtime, holder="replica-b")
    assert a.run_once(cfg) is True
    assert b.run_once(cfg) is False  # a holds the lease for the rest of the interval
    assert a.run_once(cfg) is True  # a's own next round
    assert runs(runtime.engine) == [("files", "ok"), ("files", "ok")]
