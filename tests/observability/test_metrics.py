from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from broker.auth import service
from broker.domain import Outcome, utcnow
from broker.observability import metrics
from broker.observability.metrics import REGISTRY
from broker.polling.service import poll_source
from broker.polling.skipped import Skipped
from broker.runtime import Runtime
from broker.store.ingest import IngestResult, apply_snapshot
from tests.auth.app_helper import secured_app
from tests.factories import obs, snap


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def reader(runtime: Runtime) -> dict[str, str]:
    _, token = service.create_key(runtime.engine, "prometheus", ["read"], rate_per_second=0)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    apply_snapshot(
        runtime.engine,
        snap([obs("p5.48xlarge", "98.32"), obs("g6.xlarge", "0.805", gpu="L4", gpus=1)], at=utcnow()),
        runtime.catalog,
    )
    with TestClient(app=secured_app(runtime, monkeypatch)) as c:
        yield c


def scrape(client: Any, headers: dict[str, str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_index_gauges_are_computed_at_scrape(client: Any, reader: dict[str, str], runtime: Runtime) -> None:
    got = scrape(client, reader)
    assert got[("broker_offers", (("source", "test"),))] == 2
    assert got[("broker_offers", (("source", "snapshots"),))] == 0  # configured, nothing polled yet
    age = got[("broker_data_age_seconds", (("source", "test"),))]
    assert 0 <= age < 120
    assert ("broker_data_age_seconds", (("source", "snapshots"),)) not in got
    assert got[("broker_offer_index_loaded", ())] == 1
    three = [obs("p5.48xlarge", "98.32"), obs("g6.xlarge", "0.805", gpu="L4", gpus=1), obs("g6.2xlarge", "0.98")]
    apply_snapshot(runtime.engine, snap(three, at=utcnow()), runtime.catalog)
    runtime.index.refresh()
    assert scrape(client, reader)[("broker_offers", (("source", "test"),))] == 3  # read from the new index


def test_metrics_need_the_read_scope(client: Any, runtime: Runtime) -> None:
    assert client.get("/metrics").status_code == 401
    _, placer = service.create_key(runtime.engine, "p", ["place"])
    assert client.get("/metrics", headers={"X-API-Key": placer}).status_code == 403


def test_request_and_rejection_counters(client: Any, reader: dict[str, str]) -> None:
    ok = value("broker_http_requests_total", method="GET", route="/v1/offers", status="200")
    unauth = value("broker_rejected_requests_total", reason="unauthenticated")
    invalid = value("broker_rejected_requests_total", reason="invalid")
    assert client.get("/v1/offers", headers=reader).status_code == 200
    assert client.get("/v1/offers").status_code == 401
    assert client.get("/v1/offers", headers=reader, params={"limit": "x"}).status_code == 400
    assert value("broker_http_requests_total", method="GET", route="/v1/offers", status="200") == ok + 1
    assert value("broker_rejected_requests_total", reason="unauthenticated") == unauth + 1
    assert value("broker_rejected_requests_total", reason="invalid") == invalid + 1
    got = scrape(client, reader)
    assert got[("broker_rejected_requests_total", (("reason", "unauthenticated"),))] >= 1
    assert value("broker_http_request_duration_seconds_count", method="GET", route="/v1/offers") >= 3


def test_poll_outcomes_and_durations(runtime: Runtime) -> None:
    before_ok = value("broker_polls_total", source="snapshots", outcome="ok")
    before_n = value("broker_poll_duration_seconds_count", source="snapshots")
    result = poll_source(runtime, runtime.settings.sources["snapshots"], demo=True)  # records its own metrics
    assert isinstance(result, IngestResult)
    assert value("broker_polls_total", source="snapshots", outcome=result.outcome.value) == (
        before_ok + 1 if result.outcome is Outcome.OK else 1
    )
    assert value("broker_poll_duration_seconds_count", source="snapshots") == before_n + 1
    failed = value("broker_polls_total", source="aws", outcome="failed")
    metrics.record_poll(IngestResult(source="aws", run_id=1, outcome=Outcome.FAILED, error="x"), 0.2)
    assert value("broker_polls_total", source="aws", outcome="failed") == failed + 1
    skipped = value("broker_polls_total", source="gcp", outcome="skipped")
    metrics.record_poll(Skipped("gcp", "GCP_API_KEY is not set"), 0.0)
    assert value("broker_polls_total", source="gcp", outcome="skipped") == skipped + 1


def test_placement_latency_and_decisions() -> None:
    n = value("broker_placement_latency_seconds_count")
    fast = value("broker_placement_latency_seconds_bucket", le="0.005")
    metrics.observe_placement_latency(0.003)
    metrics.observe_placement_latency(0.2)
    assert value("broker_placement_latency_seconds_count") == n + 2
    assert value("broker_placement_latency_seconds_bucket", le="0.005") == fast + 1
    spot = value("broker_decisions_total", provider="aws", purchase="spot")
    metrics.record_decision("aws", "spot")
    assert value("broker_decisions_total", provider="aws", purchase="spot") == spot + 1
