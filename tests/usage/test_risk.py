from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from litestar.testing import TestClient

from broker.domain import Availability, OfferKey, PriceObservation
from broker.risk.endpoints import ROUTES as RISK_ROUTES
from broker.risk.model import Observations, Prior, update
from broker.risk.service import risk_table
from broker.runtime import Runtime
from broker.store.ingest import apply_snapshot
from broker.usage.endpoints import ROUTES as USAGE_ROUTES
from tests.factories import snap
from tests.usage.helpers import add_placement, app_for

Client = TestClient[Any]


def test_gamma_poisson_update_has_the_closed_form() -> None:
    post = update(Prior(0.47, "aws prior", 24.0), Observations(reports=3, interruptions=10, node_hours=100.0))
    assert (post.shape, post.rate) == pytest.approx((0.47 * 24 + 10, 124.0))
    assert post.mean == pytest.approx((0.47 * 24 + 10) / 124)
    # no observations: the prior; overwhelming observations: the observed rate
    assert update(Prior(0.2, "", 24.0), Observations(0, 0, 0.0)).mean == pytest.approx(0.2)
    assert update(Prior(0.2, "", 24.0), Observations(1, 1000, 1e6)).mean == pytest.approx(1e-3, rel=0.01)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[Client]:
    spot = PriceObservation(
        key=OfferKey("aws", "us-east-1", "p5.48xlarge", "spot", zone="us-east-1a"),
        hourly_usd=Decimal("40"),
        gpu_name="H100-SXM",
        gpu_count=8,
        availability=Availability.AVAILABLE,
        attrs={"interruption_band": "5-10%"},
    )
    apply_snapshot(runtime.engine, snap([spot], at=datetime(2026, 11, 1, tzinfo=UTC)), runtime.catalog)
    runtime.index.refresh()
    with TestClient(app=app_for(runtime, [*USAGE_ROUTES, *RISK_ROUTES])) as c:
        yield c


def test_reported_spot_runs_update_the_rate(client: Client, runtime: Runtime) -> None:
    spot = add_placement(runtime.engine, purchase="spot", hourly_usd="80", nodes=2)  # 2 nodes of 8 GPUs
    od = add_placement(runtime.engine, purchase="on_demand")
    for i, (pid, hours, k) in enumerate([(spot, 160, 3), (spot, 320, 5), (od, 800, 9)]):
        r = client.post(f"/v1/placements/{pid}/report", json={
            "report_id": f"r{i}", "started_at": "2026-11-02T00:00:00Z", "ended_at": "2026-11-03T00:00:00Z",
            "gpu_hours": hours, "interruptions": k})
        assert r.status_code == 201
    body = client.get("/v1/risk").json()
    (item,) = body["items"]  # on-demand runs are not spot observations
    assert (item["provider"], item["region"], item["instance_type"]) == ("aws", "us-east-1", "p5.48xlarge")
    assert item["prior"]["rate_per_hour"] == 0.2  # the offer's band in config/placement.toml
    assert "5-10%" in item["prior"]["source"]
    node_hours = (160 + 320) / 8
    assert item["observations"] == {"reports": 2, "interruptions": 8, "node_hours": node_hours,
                                    "rate_per_hour": pytest.approx(8 / node_hours, abs=1e-6)}
    expected = (0.2 * 24 + 8) / (24 + node_hours)
    assert item["posterior"]["rate_per_hour"] == pytest.approx(expected, abs=1e-6)
    table = risk_table(runtime)
    assert table.posterior_rate("aws", "us-east-1", "p5.48xlarge") == pytest.approx(expected)
    assert table.posterior_rate("aws", "eu-west-1", "p5.48xlarge") is None
    assert client.get("/v1/risk", params={"provider": "gcp"}).json()["items"] == []
