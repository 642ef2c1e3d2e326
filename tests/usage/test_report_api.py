from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine, func, select

from broker.runtime import Runtime
from broker.usage.endpoints import ROUTES
from broker.usage.models import UsageRecord
from tests.usage.helpers import add_placement, app_for

Client = TestClient[Any]


@pytest.fixture
def client(runtime: Runtime) -> Iterator[Client]:
    with TestClient(app=app_for(runtime, ROUTES)) as c:
        yield c


def report(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "report_id": "r-1",
        "started_at": "2026-11-02T10:00:00Z",
        "ended_at": "2026-11-02T12:00:00Z",
        "gpu_hours": "16",
        "interruptions": 1,
    }
    return body | over


def stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one())


def test_report_is_stored_with_cost_at_the_placement_price(client: Client, engine: Engine) -> None:
    pid = add_placement(engine, hourly_usd="98.32", gpus_per_node=8, labels={"team": "fraud"})
    r = client.post(f"/v1/placements/{pid}/report", json=report())
    assert r.status_code == 201, r.text
    body = r.json()
    # 16 GPU-hours at 98.32 / 8 per GPU-hour
    assert body["cost_usd"] == pytest.approx(196.64)
    assert body["cost_estimated"] is True
    assert (body["provider"], body["gpu_model"], body["labels"]) == ("aws", "H100-SXM", {"team": "fraud"})


def test_billed_usd_wins_over_the_estimate(client: Client, engine: Engine) -> None:
    pid = add_placement(engine)
    body = client.post(f"/v1/placements/{pid}/report", json=report(billed_usd="150.5", predictions=1000)).json()
    assert (body["cost_usd"], body["cost_estimated"], body["predictions"]) == (150.5, False, 1000)


def test_same_report_twice_is_idempotent_and_different_content_conflicts(client: Client, engine: Engine) -> None:
    pid = add_placement(engine)
    first = client.post(f"/v1/placements/{pid}/report", json=report())
    again = client.post(f"/v1/placements/{pid}/report", json=report(gpu_hours="16.000"))  # same value, other spelling
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    clash = client.post(f"/v1/placements/{pid}/report", json=report(gpu_hours="17"))
    assert clash.status_code == 409
    assert clash.headers["content-type"].startswith("application/problem+json")
    assert clash.json()["type"].endswith("/report-conflict")
    assert stored(engine) == 1


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"ended_at": "2026-11-02T09:00:00Z"}, "(body)"),
        ({"started_at": "2026-11-02T10:00:00"}, "started_at"),  # naive: no timezone
        ({"gpu_hours": "-1"}, "gpu_hours"),
        ({"interruptions": -2}, "interruptions"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_reports_are_400_problems(client: Client, engine: Engine, over: dict[str, Any], field: str) -> None:
    pid = add_placement(engine)
    r = client.post(f"/v1/placements/{pid}/report", json=report(**over))
    assert r.status_code == 400
    problem = r.json()
    assert problem["status"] == 400
    assert field in [e["field"] for e in problem["errors"]]
    assert stored(engine) == 0


def test_unknown_placement_is_a_400_problem(client: Client, engine: Engine) -> None:
    r = client.post("/v1/placements/no-such-id/report", json=report())
    assert r.status_code == 400
    assert r.json()["type"].endswith("/unknown-placement")
    assert stored(engine) == 0
