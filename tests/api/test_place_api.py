from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
import yaml
from litestar.testing import TestClient

from broker.api.app import create_app
from broker.domain import utcnow
from broker.runtime import Runtime
from broker.store.ingest import apply_snapshot
from tests.factories import obs, snap

JOB = {
    "name": "fine-tune",
    "image": "ghcr.io/acme/train:1.2",
    "command": ["python", "train.py"],
    "gpu": {"count": 8, "models": ["H100", "A100-80GB"]},
    "work": {"hours": 10, "reference_gpu": "A100-80GB"},
    "workload": "training",
    "checkpoint": {"interval_minutes": "auto", "write_minutes": 2, "restart_minutes": 5, "size_gb": 50},
    "labels": {"team": "fraud", "project": "scoring"},
    "alternatives": 3,
}


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:  # type: ignore[type-arg]
    apply_snapshot(
        runtime.engine,
        snap(
            [
                obs("p5.48xlarge", "98.32", gpu="H100-SXM", gpus=8),
                obs("p4de.24xlarge", "40.97", gpu="A100-80GB", gpus=8),
                obs("gpu_8x_h100_sxm5", "23.92", provider="lambda", gpu="H100-SXM", gpus=8),
                obs("g6.xlarge", "0.805", gpu="L4", gpus=1),
            ],
            at=utcnow() - timedelta(minutes=1),
            source="snapshots",
        ),
        runtime.catalog,
    )
    with TestClient(app=create_app(runtime)) as c:
        yield c


def test_place_answers_choice_alternatives_breakdown_and_launch(client: TestClient) -> None:  # type: ignore[type-arg]
    r = client.post("/v1/place", json=JOB)
    assert r.status_code == 200, r.text
    body = r.json()
    choice = body["choice"]
    assert (choice["provider"], choice["instance_type"]) == ("lambda", "gpu_8x_h100_sxm5")
    parts = choice["breakdown"]
    assert sum(float(v) for v in parts.values()) == pytest.approx(float(choice["expected_cost_usd"]), abs=1e-6)
    costs = [float(o["expected_cost_usd"]) for o in [choice, *body["alternatives"]]]
    assert costs == sorted(costs)
    assert all(o["gpu_model"] in {"H100-SXM", "A100-80GB"} for o in [choice, *body["alternatives"]])
    job = (
        yaml.safe_load(body["launch"]["kubernetes_job"])
        if isinstance(body["launch"]["kubernetes_job"], str)
        else body["launch"]["kubernetes_job"]
    )
    assert job["kind"] == "Job"
    stored = client.get(f"/v1/placements/{body['placement_id']}")
    assert stored.status_code == 200
    assert stored.json()["decision"]["choice"] == choice
    assert stored.json()["request"]["labels"] == {"team": "fraud", "project": "scoring"}


def test_invalid_job_is_400_naming_each_field(client: TestClient) -> None:  # type: ignore[type-arg]
    bad = {**JOB, "gpu": {"count": 0}, "work": {"hours": -1, "reference_gpu": "A100-80GB"}}
    r = client.post("/v1/place", json=bad)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in r.json()["errors"]}
    assert any("count" in f for f in fields)
    assert any("hours" in f for f in fields)


def test_no_feasible_option_is_409_grouped_by_reason(client: TestClient) -> None:  # type: ignore[type-arg]
    r = client.post("/v1/place", json={**JOB, "constraints": {"max_hourly_usd": 1}})
    assert r.status_code == 409
    body = r.json()
    assert body["title"] == "No feasible option"
    assert body["rejected"]
    assert all(v > 0 for v in body["rejected"].values())


def test_unknown_placement_is_404(client: TestClient) -> None:  # type: ignore[type-arg]
    assert client.get("/v1/placements/nope").status_code == 404


def test_not_json_is_400(client: TestClient) -> None:  # type: ignore[type-arg]
    r = client.post("/v1/place", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400


def with_one_offer(runtime: Runtime) -> None:
    apply_snapshot(
        runtime.engine,
        snap([obs("p4de.24xlarge", "40.97", gpu="A100-80GB", gpus=8)], at=utcnow() - timedelta(minutes=1)),
        runtime.catalog,
    )
    runtime.index.refresh()


def test_stored_decision_is_the_answer_before_and_after_the_write(runtime: Runtime) -> None:
    """The answer is encoded once and stored as is: GET /v1/placements/{id} returns the very answer, whether the
    decision still waits in the write-behind batch or has been written."""
    from broker.placement.service import DecisionLog, decide, parse_job, stored

    with_one_offer(runtime)
    log = DecisionLog(runtime, every_s=3600)
    log.start()  # a writer that will not flush on its own during the test: the decision stays pending
    try:
        answer = json.loads(decide(runtime, parse_job(JOB), log))
        pending = stored(runtime, log, answer["placement_id"])
        assert pending["decision"] == answer
        assert pending["request"]["labels"] == JOB["labels"]
        assert pending["request"]["checkpoint"]["interval_minutes"] == "auto"
    finally:
        log.stop()  # flushes
    assert log.pending(answer["placement_id"]) is None
    written = stored(runtime, log, answer["placement_id"])
    assert written["decision"] == answer
    assert written["request"] == pending["request"]
    assert written["created_at"] == pending["created_at"]
    assert answer["choice"]["expected_cost_usd"] == str(Decimal(answer["choice"]["expected_cost_usd"]))


def test_a_backlog_of_decisions_is_written_in_slices_and_a_failed_slice_stays_pending(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the database was away, the decision log catches up a slice per transaction: a slice that fails is
    kept for the next try, the ones written before it are not written twice."""
    from sqlalchemy import func, select

    from broker.placement import repository
    from broker.placement.service import FLUSH_SLICE, DecisionLog, decide, parse_job
    from broker.store.models import Placement

    with_one_offer(runtime)
    log = DecisionLog(runtime, every_s=3600)
    log._thread = object()  # type: ignore[assignment]  # as if a writer ran: decisions wait in the batch
    ids = [json.loads(decide(runtime, parse_job(JOB), log))["placement_id"] for _ in range(FLUSH_SLICE * 2 + 5)]

    save_many = repository.save_many
    calls = 0

    def second_slice_fails(conn, rows):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("database went away")
        save_many(conn, rows)

    monkeypatch.setattr(repository, "save_many", second_slice_fails)
    with pytest.raises(ConnectionError):
        log.flush()

    def stored() -> int:
        with runtime.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Placement)).scalar_one())

    assert stored() == FLUSH_SLICE
    assert sum(log.pending(i) is not None for i in ids) == FLUSH_SLICE + 5
    log.flush()  # the third call on: the database is back
    assert stored() == len(ids)
    assert all(log.pending(i) is None for i in ids)
