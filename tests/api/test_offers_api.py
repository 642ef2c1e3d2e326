from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from broker.api.app import create_app
from broker.runtime import Runtime
from broker.store.ingest import apply_snapshot
from tests.factories import obs, snap


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:  # type: ignore[type-arg]
    apply_snapshot(
        runtime.engine,
        snap(
            [
                obs("p5.48xlarge", "98.32", gpu="H100-SXM", gpus=8),
                obs("p5.48xlarge", "30.00", gpu="H100-SXM", gpus=8, purchase="spot", zone="us-east-1a"),
                obs("p4de.24xlarge", "40.97", gpu="A100-80GB", gpus=8),
                obs("g6.xlarge", "0.805", gpu="L4", gpus=1),
                obs("odd.1", "1.0", gpu="Mystery GPU", gpus=1),
            ]
        ),
        runtime.catalog,
    )
    with TestClient(app=create_app(runtime)) as c:
        yield c


def test_offers_sorted_by_gpu_hour_with_api_field_names(client: TestClient) -> None:  # type: ignore[type-arg]
    r = client.get("/v1/offers")
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 5
    prices = [o["gpu_hourly_usd"] for o in body["items"]]
    assert prices == sorted(prices)
    first = body["items"][0]
    for name in (
        "provider",
        "region",
        "zone",
        "instance_type",
        "purchase",
        "term",
        "gpu_model",
        "gpu_count",
        "gpu_memory_gb",
        "vcpus",
        "memory_gb",
        "hourly_usd",
        "gpu_hourly_usd",
        "observed_at",
        "last_confirmed_at",
        "availability",
        "source",
    ):
        assert name in first
    spot = next(o for o in body["items"] if o["purchase"] == "spot")
    assert spot["gpu_hourly_usd"] == pytest.approx(30.0 / 8)
    assert spot["zone"] == "us-east-1a"


def test_offers_filters(client: TestClient) -> None:  # type: ignore[type-arg]
    h100 = client.get("/v1/offers", params={"gpu": "H100"}).json()
    assert {o["gpu_model"] for o in h100["items"]} == {"H100-SXM"}
    assert h100["total"] == 2
    assert client.get("/v1/offers", params={"gpu": "H100", "purchase": "spot"}).json()["total"] == 1
    assert client.get("/v1/offers", params={"min_gpus": 8}).json()["total"] == 3
    unknown = client.get("/v1/offers", params={"unknown_gpus": "true"}).json()
    assert [o["gpu_model"] for o in unknown["items"]] == ["Mystery GPU"]


def test_offers_pagination(client: TestClient) -> None:  # type: ignore[type-arg]
    page1 = client.get("/v1/offers", params={"limit": 2}).json()
    assert len(page1["items"]) == 2
    assert page1["next"] is not None
    assert "offset=2" in page1["next"]
    page3 = client.get("/v1/offers", params={"limit": 2, "offset": 4}).json()
    assert len(page3["items"]) == 1
    assert page3["next"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [({"purchase": "lease"}, "purchase"), ({"min_gpus": "0"}, "min_gpus"), ({"limit": "x"}, "limit")],
)
def test_bad_parameters_are_problem_details(client: TestClient, params: dict[str, str], field: str) -> None:  # type: ignore[type-arg]
    r = client.get("/v1/offers", params=params)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 400
    assert body["title"] == "Invalid request"
    assert any(field in e["field"] for e in body["errors"])


def test_unknown_gpu_is_a_400_that_lists_known_models(client: TestClient) -> None:  # type: ignore[type-arg]
    r = client.get("/v1/offers", params={"gpu": "Z999"})
    assert r.status_code == 400
    assert "known models" in r.json()["detail"]


def test_health_ready_and_schema(client: TestClient) -> None:  # type: ignore[type-arg]
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "offer_index": "ok"}
    schema = client.get("/schema/openapi.json").json()
    assert "/v1/offers" in schema["paths"]


def test_unknown_route_is_problem_json(client: TestClient) -> None:  # type: ignore[type-arg]
    r = client.get("/v1/nope")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


def test_providers_lists_configured_sources(client: TestClient) -> None:  # type: ignore[type-arg]
    body = client.get("/v1/providers").json()
    names = {p["source"] for p in body["providers"]}
    assert "snapshots" in names


def test_every_domain_is_served_by_create_app(client: TestClient) -> None:  # type: ignore[type-arg]
    """The app wires every package's routes (a package left out would 404 in production, not in its own tests)."""
    paths = set(client.get("/schema/openapi.json").json()["paths"])
    for path in ("/v1/offers", "/v1/providers", "/v1/place", "/v1/prices/history", "/v1/market/{gpu}", "/v1/risk",
                 "/v1/reports/showback", "/v1/exports/commitments", "/v1/keys"):
        assert path in paths, path
    assert client.get("/v1/prices/history", params={"gpu": "H100-SXM"}).status_code == 200
    assert client.get("/ui").status_code == 200
    assert client.get("/metrics").status_code == 200
