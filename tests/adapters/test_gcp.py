"""GCP source through google-cloud-billing's REST transport replaying recorded and constructed pages."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from adapters.base import SourceContext
from adapters.gcp import GcpSource
from adapters.gcp_replay import Handler, page_token, pages_handler, replay_client
from adapters.gcp_skus import classify
from broker.domain import OfferKey, SourceError
from broker.gpus import GpuCatalog

FIXTURES = Path(__file__).parent / "fixtures" / "gcp"
A3_PAGE = (FIXTURES / "skus_page_a3_us-central1_constructed.json").read_bytes()


def ctx(*, demo: bool = False, env: dict[str, str] | None = None, **options: Any) -> SourceContext:
    return SourceContext(
        name="gcp", options=options, env=env or {}, catalog=GpuCatalog([]), config_dir=Path("."), demo=demo
    )


def fetch(handler: Handler, **options: Any) -> Any:
    sleeps: list[float] = []
    snap = GcpSource(ctx(**options), client=replay_client(handler), sleep=sleeps.append).fetch()
    return snap, sleeps


def recorded(payloads: Path) -> bytes:
    return (payloads / "gcp" / "cloudbilling_v1_services_6F81-5844-456A_skus_list_page.json").read_bytes()


def two_pages(payloads: Path) -> dict[str, bytes]:
    first = recorded(payloads)
    return {"": first, json.loads(first)["nextPageToken"]: A3_PAGE}


def sku_page(*skus: dict[str, Any], token: str = "") -> bytes:
    return json.dumps({"skus": list(skus), "nextPageToken": token}).encode()


def a3_skus() -> list[dict[str, Any]]:
    skus: list[dict[str, Any]] = json.loads(A3_PAGE)["skus"]
    return skus


def test_a3_highgpu_8g_on_demand_known_answer(payloads: Path) -> None:
    """vCPUs x core + GiB x RAM + GPUs x GPU + bundled SSD, from us-central1 published unit prices."""
    snap, _ = fetch(pages_handler(two_pages(payloads)))
    key = OfferKey("gcp", "us-central1", "a3-highgpu-8g", "on_demand")
    a3 = next(o for o in snap.observations if o.key == key)
    ssd = (Decimal("0.08") / 730 * 6000).quantize(Decimal("1e-10"))
    assert a3.hourly_usd == 208 * Decimal("0.03222") + 1872 * Decimal("0.002817") + 8 * Decimal("11.06") + ssd
    assert (a3.gpu_name, a3.gpu_count, a3.vcpus, a3.memory_gb) == ("nvidia-h100-80gb", 8, 208.0, 1872)
    # a3-highgpu-1g/2g/4g are not sold on demand
    assert not [o for o in snap.observations if o.key.instance_type == "a3-highgpu-4g"]


def test_recorded_page_composes_a2_and_rejects_non_usd(payloads: Path) -> None:
    snap, _ = fetch(pages_handler(two_pages(payloads)))
    assert snap.complete
    assert snap.rejected == Counter({"non_usd": 4})  # the recorded page mixes IDR rows in
    a2 = {o.key.region: o.hourly_usd for o in snap.observations if o.key.instance_type == "a2-highgpu-8g"}
    expected = 96 * Decimal("0.031611") + 680 * Decimal("0.004237") + 8 * Decimal("2.933908")
    assert a2 == {"us-central1": expected, "us-east1": expected, "us-west1": expected}
    assert all(o.key.instance_type != "a4-highgpu-8g" for o in snap.observations)  # DWS slice row skipped


def test_regions_option_limits_output(payloads: Path) -> None:
    snap, _ = fetch(pages_handler(two_pages(payloads)), regions=["us-east1"])
    assert {o.key.region for o in snap.observations} == {"us-east1"}


def test_spot_and_commitments_and_n1() -> None:
    def sku(desc: str, usage: str, units: int, nanos: int, unit: str = "h") -> dict[str, Any]:
        base = a3_skus()[0]
        item = json.loads(json.dumps(base))
        item["description"], item["category"]["usageType"] = desc, usage
        rate = item["pricingInfo"][0]["pricingExpression"]
        rate["usageUnit"] = unit
        rate["tieredRates"][0]["unitPrice"] |= {"units": str(units), "nanos": nanos}
        return item

    skus = [
        sku("Spot Preemptible N1 Predefined Instance Core running in Americas", "Preemptible", 0, 10000000),
        sku("Spot Preemptible N1 Predefined Instance Ram running in Americas", "Preemptible", 0, 1000000, "GiBy.h"),
        sku("Nvidia Tesla T4 GPU attached to Spot Preemptible VMs running in Americas", "Preemptible", 0, 100000000),
        sku("Commitment v1: G2 Cpu in Americas for 1 Year", "Commit1Yr", 0, 20000000),
        sku("Commitment v1: G2 Ram in Americas for 1 Year", "Commit1Yr", 0, 2000000, "GiBy.h"),
        sku("Commitment v1: Nvidia L4 GPU in Americas for 1 Year", "Commit1Yr", 0, 300000000),
        sku("Reserved G2 Instance Core running in Americas", "OnDemand", 0, 1),
    ]
    snap, _ = fetch(pages_handler({"": sku_page(*skus)}))
    got = {(o.key.instance_type, o.key.purchase, o.key.term): o.hourly_usd for o in snap.observations}
    n1_spot = 8 * Decimal("0.01") + 30 * Decimal("0.001") + Decimal("0.1")
    g2_commit = 24 * Decimal("0.02") + 96 * Decimal("0.002") + 2 * Decimal("0.3")
    assert got[("n1-standard-8+nvidia-tesla-t4x1", "spot", "")] == n1_spot
    assert got[("g2-standard-24", "committed_use", "1y")] == g2_commit
    assert not any(p == "on_demand" for _, p, _ in got)


@pytest.mark.parametrize(
    ("description", "usage", "expected"),
    [
        (
            "Nvidia H100 80GB Mega GPU attached to Spot Preemptible VMs running in Tokyo",
            "spot",
            ("gpu", "nvidia-h100-mega-80gb"),
        ),
        ("Commitment v1: Nvidia Tesla A100 GPU in Americas for 3 Years", "commit_3y", ("gpu", "nvidia-tesla-a100")),
        ("Spot Preemptible A4 Nvidia B200 (1 gpu slice) running in Americas", "spot", ("slice", "A4:nvidia-b200")),
        ("A3Plus Instance Core running in Americas", "on_demand", ("cpu", "A3PLUS")),
        ("SSD backed Local Storage attached to Spot Preemptible VMs", "spot", ("ssd", "local")),
        ("E2 Instance Core running in Americas", "on_demand", ("cpu", "E2")),
        ("Network Internet Egress from Americas to APAC", "on_demand", None),
    ],
)
def test_classify(description: str, usage: str, expected: tuple[str, str] | None) -> None:
    assert classify(description, usage) == expected


# ---- faults ---------------------------------------------------------------------------------------------
def test_transient_errors_are_retried(payloads: Path) -> None:
    pages = two_pages(payloads)
    answers = iter(
        [
            (503, b'{"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}'),
            (429, b'{"error": {"code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED"}}'),
        ]
    )

    def handler(request: requests.PreparedRequest) -> tuple[int, bytes]:
        return next(answers, None) or (200, pages[page_token(request)])

    snap, sleeps = fetch(handler)
    assert sleeps == [1.0, 2.0] and snap.complete and snap.observations


@pytest.mark.parametrize("exc", [requests.exceptions.ConnectTimeout("slow"), requests.exceptions.ConnectionError("no")])
def test_network_failures_end_in_source_error(exc: Exception) -> None:
    def handler(request: requests.PreparedRequest) -> tuple[int, bytes]:
        raise exc

    with pytest.raises(SourceError, match="gave up after 5"):
        fetch(handler)


def test_500_on_first_page_is_source_error() -> None:
    with pytest.raises(SourceError, match="InternalServerError"):
        fetch(lambda r: (500, b'{"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}'))


def test_page_missing_mid_listing_marks_incomplete(payloads: Path) -> None:
    snap, _ = fetch(pages_handler({"": recorded(payloads)}))  # page 2's token is unknown: HTTP 400
    assert not snap.complete
    assert snap.observations  # what page 1 composed stands
    assert "incomplete" in snap.warnings[0]


def test_malformed_page_is_source_error() -> None:
    with pytest.raises(SourceError, match="unreadable"):
        fetch(lambda r: (200, b'{"skus": [{"description": 5'))


def test_renamed_and_bad_price_fields_are_counted() -> None:
    renamed, negative, zero = a3_skus()[0], a3_skus()[1], a3_skus()[2]
    renamed["pricingInfo"] = [{"pricingExpressionRenamed": {}}]
    negative["pricingInfo"][0]["pricingExpression"]["tieredRates"][0]["unitPrice"] |= {"units": "-1", "nanos": 0}
    zero["pricingInfo"][0]["pricingExpression"]["tieredRates"] = []
    snap, _ = fetch(pages_handler({"": sku_page(renamed, negative, zero, *a3_skus()[3:])}))
    assert snap.rejected == Counter({"missing_price": 2, "negative_price": 1})
    assert snap.observations == []


def test_invalid_api_key_is_source_error(payloads: Path) -> None:
    body = (payloads / "gcp" / "cloudbilling_v1_error_400_api_key_invalid.json").read_bytes()
    with pytest.raises(SourceError, match="API key rejected"):
        fetch(lambda r: (400, body))


def test_permission_denied_is_source_error() -> None:
    with pytest.raises(SourceError, match="credentials rejected"):
        fetch(lambda r: (403, b'{"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}'))


def test_missing_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    assert "GCP_API_KEY" in (GcpSource(ctx(env={"CLOUDSDK_CONFIG": str(tmp_path)})).missing_credentials() or "")
    assert GcpSource(ctx(env={"GCP_API_KEY": "k"})).missing_credentials() is None


def test_request_carries_currency_and_paging(payloads: Path) -> None:
    seen: list[str] = []
    pages = two_pages(payloads)

    def handler(request: requests.PreparedRequest) -> tuple[int, bytes]:
        seen.append(request.url or "")
        return 200, pages[page_token(request)]

    fetch(handler)
    assert len(seen) == 2 and all("currencyCode=USD" in u for u in seen)
    assert "pageToken=" in seen[1] and "/v1/services/6F81-5844-456A/skus" in seen[0]


def test_demo_mode_replays_project_pages() -> None:
    snap = GcpSource(ctx(demo=True)).fetch()
    assert snap.demo and snap.complete
    assert OfferKey("gcp", "us-central1", "a3-highgpu-8g", "on_demand") in {o.key for o in snap.observations}
