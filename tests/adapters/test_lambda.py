"""Lambda Cloud adapter: the vendor's recorded examples, a constructed listing, and every fault."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.base import SourceContext
from adapters.lambda_labs import DEFAULT_REGIONS, LambdaSource
from broker.domain import Availability, Purchase, SourceError
from broker.gpus import GpuCatalog

FIXTURES = Path(__file__).parent / "fixtures" / "lambda"
KEY = {"LAMBDA_API_KEY": "secret-test-key"}

Handler = Callable[[httpx.Request], httpx.Response]


def source(
    handler: Handler | None = None, *, env: dict[str, str] | None = None, demo: bool = False,
    sleeps: list[float] | None = None, **options: Any,
) -> LambdaSource:  # fmt: skip
    http = httpx.Client(transport=httpx.MockTransport(handler)) if handler else None
    ctx = SourceContext(
        name="lambda",
        options=options,
        env=KEY if env is None else env,
        catalog=GpuCatalog([]),
        config_dir=Path("."),
        demo=demo,
        http=http,
    )
    return LambdaSource(ctx, sleep=(sleeps if sleeps is not None else []).append)


def serve(body: Any, status: int = 200, seen: list[httpx.Request] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, json=body)

    return handle


def constructed() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "instance_types_constructed.json").read_text(encoding="utf-8"))
    return data


def test_vendor_example_with_string_cents_and_no_gpu_description(payloads: Path) -> None:
    body = json.loads((payloads / "lambda" / "instance_types_openapi_v1.5.3_example.json").read_text())
    snap = source(serve(body)).fetch()

    a100 = {o.key.region: o for o in snap.observations if o.key.instance_type == "gpu_1x_a100"}
    assert a100["us-tx-1"].hourly_usd == Decimal("0.80")  # "80" cents
    assert a100["us-tx-1"].availability == Availability.AVAILABLE
    # the known regions it is absent from are sold out, not unknown
    assert set(a100) == {*DEFAULT_REGIONS, "us-tx-1"}
    assert {o.availability for r, o in a100.items() if r != "us-tx-1"} == {Availability.UNAVAILABLE}
    one = a100["us-tx-1"]
    assert (one.gpu_name, one.gpu_count, one.gpu_memory_gb) == ("RTX A100 (24 GB)", 1, 24)
    assert (one.vcpus, one.memory_gb) == (24, 800)

    a6000 = next(o for o in snap.observations if o.key.instance_type == "gpu_4x_a6000" and o.key.region == "us-az-1")
    assert (a6000.hourly_usd, a6000.gpu_count, a6000.gpu_name) == (Decimal("1.10"), 4, "RTX 6000 (24 GB)")
    assert a6000.availability == Availability.AVAILABLE
    assert not snap.rejected and snap.complete


def test_constructed_listing_one_on_demand_offer_per_known_region() -> None:
    seen: list[httpx.Request] = []
    snap = source(serve(constructed(), seen=seen)).fetch()

    request = seen[0]
    assert str(request.url) == "https://cloud.lambda.ai/api/v1/instance-types"
    assert request.headers["Authorization"] == "Bearer secret-test-key"

    h100 = {o.key.region: o for o in snap.observations if o.key.instance_type == "gpu_8x_h100_sxm5"}
    assert set(h100) == set(DEFAULT_REGIONS)
    assert {r for r, o in h100.items() if o.availability == Availability.AVAILABLE} == {"us-east-1", "us-south-1"}
    assert {o.hourly_usd for o in h100.values()} == {Decimal("31.92")}  # 3192 cents, same in every region
    east = h100["us-east-1"]
    assert (east.gpu_name, east.gpu_count, east.gpu_memory_gb, east.vcpus) == ("H100 (80 GB SXM5)", 8, 80, 208)
    assert east.key.purchase == Purchase.ON_DEMAND and east.currency == "USD"

    sold_out = [o for o in snap.observations if o.key.instance_type == "gpu_8x_a100_80gb_sxm4"]
    assert len(sold_out) == len(DEFAULT_REGIONS)
    assert {o.availability for o in sold_out} == {Availability.UNAVAILABLE}
    v100 = next(o for o in snap.observations if o.key.instance_type == "gpu_8x_v100")
    assert (v100.gpu_name, v100.gpu_memory_gb) == ("Tesla V100 (16 GB)", 16)
    assert {o.key.instance_type for o in snap.observations} == {
        "gpu_8x_h100_sxm5",
        "gpu_8x_a100_80gb_sxm4",
        "gpu_1x_gh200",
        "gpu_1x_a10",
        "gpu_8x_v100",
    }  # the CPU type is not a GPU offer, and not a refusal either
    assert not snap.rejected


def test_regions_and_base_url_options() -> None:
    seen: list[httpx.Request] = []
    snap = source(
        serve(constructed(), seen=seen), base_url="https://cloud.lambdalabs.com/", regions=["us-east-1"]
    ).fetch()
    assert str(seen[0].url) == "https://cloud.lambdalabs.com/api/v1/instance-types"
    h100 = {o.key.region for o in snap.observations if o.key.instance_type == "gpu_8x_h100_sxm5"}
    assert h100 == {"us-east-1", "us-south-1"}  # a region with capacity is offered even when not configured


def test_demo_mode_needs_no_key_and_marks_the_snapshot() -> None:
    src = source(env={}, demo=True)
    assert src.missing_credentials() is None
    snap = src.fetch()
    assert snap.demo and snap.complete
    h100 = {o.hourly_usd for o in snap.observations if o.key.instance_type == "gpu_8x_h100_sxm5"}
    assert h100 == {Decimal("31.92")}


def test_missing_credentials_are_reported_and_fetch_refuses() -> None:
    src = source(serve(constructed()), env={})
    assert src.missing_credentials() == "LAMBDA_API_KEY is not set (create an API key in the Lambda Cloud dashboard)"
    with pytest.raises(SourceError, match="LAMBDA_API_KEY is not set"):
        src.fetch()


def test_rejected_key_uses_the_recorded_error_body(payloads: Path) -> None:
    body = json.loads((payloads / "lambda" / "error_401_invalid_api_key_openapi_example.json").read_text())
    with pytest.raises(SourceError, match=r"credentials rejected.*LAMBDA_API_KEY was rejected"):
        source(serve(body, 401)).fetch()


def test_provider_unavailable_is_retried_then_fails(payloads: Path) -> None:
    body = json.loads((payloads / "lambda" / "error_provider_unavailable_docs_example.json").read_text())
    sleeps: list[float] = []
    with pytest.raises(SourceError, match=r"HTTP 503.*gave up after 4"):
        source(serve(body, 503), sleeps=sleeps).fetch()
    assert sleeps == [1.0, 2.0, 4.0]


def test_an_error_body_with_status_200_is_a_source_error(payloads: Path) -> None:
    body = json.loads((payloads / "lambda" / "error_provider_unavailable_docs_example.json").read_text())
    with pytest.raises(SourceError, match="provider/internal-unavailable: Provider unavailable"):
        source(serve(body)).fetch()


def raising(exc: Exception) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc

    return handle


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (raising(httpx.ConnectTimeout("slow")), "timed out"),
        (raising(httpx.ConnectError("[Errno 111] Connection refused")), "cannot connect"),
        (lambda r: httpx.Response(500, json={"error": {"code": "global/unknown"}}), "HTTP 500"),
        (lambda r: httpx.Response(429, headers={"Retry-After": "1"}), "rate limited"),
        (lambda r: httpx.Response(200, content=b'{"data": {'), "not valid JSON"),
        (lambda r: httpx.Response(200, json={"instance_types": {}}), "no 'data' object"),
        (lambda r: httpx.Response(200, json={"data": {}}), "no usable GPU instance type"),
        (lambda r: httpx.Response(200, json=[1, 2]), "no 'data' object"),
    ],
)
def test_faults_end_in_source_error(handler: Handler, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        source(handler).fetch()


def test_429_honours_retry_after_then_succeeds() -> None:
    calls = iter([httpx.Response(429, headers={"Retry-After": "5"}), httpx.Response(200, json=constructed())])
    sleeps: list[float] = []
    snap = source(lambda r: next(calls), sleeps=sleeps).fetch()
    assert sleeps == [5.0] and snap.observations


def test_renamed_or_missing_fields_are_counted() -> None:
    body = constructed()
    data = body["data"]
    price = data["gpu_8x_h100_sxm5"]["instance_type"].pop("price_cents_per_hour")
    data["gpu_8x_h100_sxm5"]["instance_type"]["price_cents"] = price
    data["gpu_1x_a10"] = {"type": data["gpu_1x_a10"]["instance_type"]}
    data["gpu_1x_gh200"]["instance_type"]["price_cents_per_hour"] = "n/a"
    data["gpu_8x_v100"]["instance_type"].update(description="mystery", gpu_description=None)
    data["gpu_8x_a100_80gb_sxm4"]["regions_with_capacity_available"] = "us-east-1"
    with pytest.raises(SourceError, match="no usable GPU instance type"):
        source(serve(body)).fetch()
    data["gpu_1x_new"] = constructed()["data"]["gpu_1x_a10"]
    snap = source(serve(body)).fetch()
    assert snap.rejected == {
        "missing field price_cents_per_hour": 1,
        "missing field instance_type": 1,
        "price is not a number": 1,
        "cannot tell the GPU model or count": 1,
        "malformed regions_with_capacity_available": 1,
    }
    assert {o.key.instance_type for o in snap.observations} == {"gpu_1x_new"}


@pytest.mark.parametrize(("cents", "dollars"), [(0, "0"), (-150, "-1.5"), ("0", "0")])
def test_zero_and_negative_prices_pass_through_for_ingest_to_refuse(cents: Any, dollars: str) -> None:
    body = constructed()
    body["data"]["gpu_1x_a10"]["instance_type"]["price_cents_per_hour"] = cents
    snap = source(serve(body)).fetch()
    a10 = {o.hourly_usd for o in snap.observations if o.key.instance_type == "gpu_1x_a10"}
    assert a10 == {Decimal(dollars)}
    assert not snap.rejected


def test_prices_are_always_us_dollars() -> None:
    # Lambda has no currency field: the unit is in the field name (US cents per hour)
    body = constructed()
    body["data"]["gpu_1x_a10"]["instance_type"]["currency"] = "EUR"  # an unknown field changes nothing
    snap = source(serve(body)).fetch()
    assert {o.currency for o in snap.observations} == {"USD"}
