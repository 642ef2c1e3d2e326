from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.testing import TestClient

from broker.api.deps import provide_runtime
from broker.api.problems import EXCEPTION_HANDLERS
from broker.history.endpoints import ROUTES
from broker.runtime import Runtime
from tests.history.helpers import obs, poll

Client = TestClient[Litestar]


def today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def universe(spot_a: str) -> list:  # type: ignore[type-arg]
    return [
        obs("p5.48xlarge", "80", gpus=8),
        obs("p5.48xlarge", spot_a, gpus=8, purchase="spot", zone="us-east-1a"),
        obs("p5.48xlarge", "32", gpus=8, purchase="spot", zone="us-east-1b"),
        obs("a3-highgpu-8g", "88", gpus=8, provider="gcp", region="us-central1"),
        obs("gpu_1x_h100_sxm5", "4", gpus=1, provider="lambda", region="us-west-1"),
    ]


@pytest.fixture
def client(runtime: Runtime) -> Iterator[Client]:
    d = today()
    for day, spot in ((-3, "24"), (-2, "16"), (-1, "24")):
        poll(runtime.engine, runtime.catalog, d + timedelta(days=day, hours=1), universe(spot))
    runtime.index.refresh()
    app = Litestar(
        route_handlers=ROUTES,
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False)},
        exception_handlers=dict(EXCEPTION_HANDLERS),
        state=State({"runtime": runtime}),
    )
    with TestClient(app=app) as c:
        yield c


def test_history_json_shape_and_defaults(client: Client) -> None:
    r = client.get("/v1/prices/history", params={"gpu": "H100", "purchase": "spot", "step": "1d"})
    assert r.status_code == 200
    body = r.json()
    assert body["unit"] == "USD per GPU-hour" and body["agg"] == "min" and body["step"] == "1d"
    start, end = datetime.fromisoformat(body["from"]), datetime.fromisoformat(body["to"])
    assert timedelta(days=7) <= end - start < timedelta(days=8)  # default range, aligned to the step
    [series] = body["series"]
    assert series["key"] == {"provider": "aws"}
    assert [p["value"] for p in series["points"]] == [3.0, 2.0, 2.0, 3.0]
    assert series["points"][0]["t"] == (today() - timedelta(days=3)).isoformat()


def test_history_csv(client: Client) -> None:
    r = client.get("/v1/prices/history", params={"gpu": "H100-SXM", "step": "1d", "group_by": "provider,purchase",
                                                 "agg": "max", "unit": "instance_hour"},
                   headers={"Accept": "text/csv"})  # fmt: skip
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert set(rows[0]) == {"provider", "purchase", "t", "value", "unit"}
    aws_spot = [float(x["value"]) for x in rows if (x["provider"], x["purchase"]) == ("aws", "spot")]
    assert aws_spot == [32.0, 32.0, 32.0, 32.0]  # the other zone's $32 is the max every day
    assert {x["unit"] for x in rows} == {"USD per instance-hour"}


@pytest.mark.parametrize(("params", "field", "hint"), [
    ({"gpu": "Z999"}, "gpu", "use a model id or a family"),
    ({"from": "2026-11-10T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from", "swap them"),
    ({"from": "2026-11-01T00:00:00"}, "from", "add one"),
    ({"from": "yesterday"}, "from", "ISO 8601"),
    ({"agg": "median"}, "agg", "min, max, avg, last"),
    ({"step": "5 minutes"}, "step", "15m, 1h, 1d"),
    ({"step": "1m", "from": "2025-11-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "step", "use step=2h or more"),
    ({"unit": "gpu_minute"}, "unit", "instance_hour"),
    ({"group_by": "zone"}, "group_by", "offer, provider, gpu_model"),
    ({"purchase": "cheap"}, "purchase", "on_demand"),
    ({"step": "raw"}, "step", "group_by=offer"),
])  # fmt: skip
def test_bad_parameters_are_400_problems_that_say_how_to_fix(
    client: Client, params: dict[str, str], field: str, hint: str
) -> None:
    r = client.get("/v1/prices/history", params=params)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["errors"][0]["field"] == field
    assert all(word in body["detail"] for word in hint.split(", ")) or hint in body["detail"], body["detail"]


def test_market_view_numbers(client: Client) -> None:
    r = client.get("/v1/market/H100-SXM")
    assert r.status_code == 200
    m = r.json()
    assert m["unit"] == "USD per GPU-hour"
    cheapest = {(c["provider"], c["purchase"]): c["gpu_hourly_usd"] for c in m["cheapest"]}
    assert cheapest == {("aws", "spot"): 3.0, ("lambda", "on_demand"): 4.0, ("aws", "on_demand"): 10.0,
                        ("gcp", "on_demand"): 11.0}  # fmt: skip
    assert [c["gpu_hourly_usd"] for c in m["cheapest"]] == sorted(cheapest.values())
    assert m["spot_discount"]["overall"] == 0.25  # cheapest spot 3 vs cheapest on-demand 4
    assert m["spot_discount"]["by_provider"] == {"aws": 0.7}
    spot = m["history"]["by_purchase"]["spot"]["7d"]
    assert spot == {"days": 4, "min": 2.0, "median": 2.5, "max": 3.0, "volatility": 0.2}
    assert m["history"]["by_purchase"]["on_demand"]["30d"]["volatility"] == 0.0
    assert "coefficient of variation" in m["history"]["volatility_definition"]
    [source] = m["sources"]
    assert source["source"] == "test" and source["data_age_s"] >= 0 and source["last_poll_at"]


def test_market_unknown_or_ambiguous_gpu(client: Client) -> None:
    r = client.get("/v1/market/Z999")
    assert r.status_code == 400 and "unknown GPU" in r.json()["detail"]
    r = client.get("/v1/market/H100")
    assert r.status_code == 400 and "ask for one" in r.json()["detail"]
