"""AWS source through botocore Stubber: recorded + constructed PriceList items, spot, Savings Plans, faults."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from adapters.aws import AwsSource, iter_spot_history, pricing_filters
from adapters.aws_market import advisor_bands, current_spot, savings_rates, spot_points
from adapters.aws_pricing import ItemError, parse_item
from adapters.aws_specs import gpu_memory_gb, parse_instance_types
from adapters.base import SourceContext
from broker.domain import OfferKey, SourceError
from broker.gpus import GpuCatalog

FIXTURES = Path(__file__).parent / "fixtures" / "aws"
NOW = datetime(2026, 9, 1, 12, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(autouse=True)
def _fresh_spec_cache() -> Iterator[None]:
    AwsSource.shared_specs.clear()
    yield
    AwsSource.shared_specs.clear()


class Stubs:
    """Stubbed clients per (service, region), handed out by the source's client factory."""

    def __init__(self) -> None:
        self.stubbers: dict[tuple[str, str], Stubber] = {}
        self.clients: dict[tuple[str, str], Any] = {}

    def __call__(self, service: str, region: str) -> Any:
        return self.slot(service, region)[0]

    def slot(self, service: str, region: str) -> tuple[Any, Stubber]:
        if (service, region) not in self.clients:
            client = boto3.client(service, region_name=region, aws_access_key_id="t", aws_secret_access_key="t")
            self.clients[(service, region)] = client
            self.stubbers[(service, region)] = Stubber(client)
            self.stubbers[(service, region)].activate()
        return self.clients[(service, region)], self.stubbers[(service, region)]

    def ok(self, service: str, region: str, op: str, body: dict[str, Any], params: Any = None) -> None:
        self.slot(service, region)[1].add_response(op, body, params)

    def error(self, service: str, region: str, op: str, code: str, status: int = 400) -> None:
        self.slot(service, region)[1].add_client_error(op, service_error_code=code, http_status_code=status)

    def done(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


def ctx(**options: Any) -> SourceContext:
    http = options.pop("http", None)
    return SourceContext(
        name="aws",
        options={"spot_advisor": False, **options},
        env={},
        catalog=GpuCatalog([]),
        config_dir=Path("."),
        http=http,
        now=lambda: NOW,
    )


def pricing_page(*items: dict[str, Any] | str, token: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {
        "FormatVersion": "aws_v1",
        "PriceList": [i if isinstance(i, str) else json.dumps(i) for i in items],
    }
    if token:
        page["NextToken"] = token
    return page


def specs_page() -> dict[str, Any]:
    return load("ec2_describe_instance_types_gpu_trimmed.json")


def p5_item(price: str = "55.0400000000") -> dict[str, Any]:
    item: dict[str, Any] = json.loads(load("pricing_page_us-east-1_1_constructed.json")["PriceList"][0])
    for term in item["terms"]["OnDemand"].values():
        for dim in term["priceDimensions"].values():
            dim["pricePerUnit"] = {"USD": price}
    return item


def run(stubs: Stubs, **options: Any) -> Any:
    sleeps: list[float] = []
    snap = AwsSource(ctx(**options), clients=stubs, sleep=sleeps.append).fetch()
    stubs.done()
    return snap, sleeps


ONLY_PRICES = {"regions": ["us-east-1"], "spot": False, "savings_plans": False}


# ---- parsing: recorded and constructed items -----------------------------------------------------------
def test_recorded_m5_large_item_reserved_terms_amortise(payloads: Path) -> None:
    raw = (payloads / "aws" / "pricing_get_products_priceitem_m5.large_us-east-1.json").read_text()
    item = parse_item(raw, "us-east-1")  # a JSON string, as PriceList carries it
    by_key = {k: p for k, p, _ in item.prices}
    assert by_key[OfferKey("aws", "us-east-1", "m5.large", "on_demand")] == Decimal("0.096")
    all_up = OfferKey("aws", "us-east-1", "m5.large", "reserved", term="1y", payment="all_upfront", plan="standard")
    assert by_key[all_up] == Decimal(494) / Decimal(8760)
    partial_3y = OfferKey(
        "aws", "us-east-1", "m5.large", "reserved", term="3y", payment="partial_upfront", plan="convertible"
    )
    assert by_key[partial_3y] == Decimal("0.023") + Decimal(592) / Decimal(26280)
    assert len(item.prices) == 13  # 1 on-demand + 12 reserved terms


def test_p5_reserved_all_upfront_known_answer() -> None:
    """Constructed p5.48xlarge item (2024 list prices): effective 1-yr all-upfront = upfront / 8760 + hourly."""
    item = parse_item(json.dumps(load("pricing_p5.48xlarge_reserved_2024_constructed.json")), "us-east-1")
    prices = {k: (p, extra) for k, p, extra in item.prices}
    one_year = OfferKey(
        "aws", "us-east-1", "p5.48xlarge", "reserved", term="1y", payment="all_upfront", plan="standard"
    )
    price, extra = prices[one_year]
    assert price == Decimal("504838.8") / 8760 + 0
    assert price == Decimal("57.63")
    assert extra["upfront_usd"] == "504838.8"
    three_year = OfferKey(
        "aws", "us-east-1", "p5.48xlarge", "reserved", term="3y", payment="all_upfront", plan="standard"
    )
    assert prices[three_year][0] == Decimal("43.16")
    assert prices[OfferKey("aws", "us-east-1", "p5.48xlarge", "on_demand")][0] == Decimal("98.32")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda i: i.pop("terms"), "missing_field"),
        (lambda i: i["product"]["attributes"].pop("instanceType"), "missing_field"),
        (lambda i: i["product"].__setitem__("attrs", i["product"].pop("attributes")), "missing_field"),
        (
            lambda i: next(iter(next(iter(i["terms"]["OnDemand"].values()))["priceDimensions"].values())).__setitem__(
                "pricePerUnit", {"CNY": "380.0"}
            ),
            "non_usd",
        ),
        (
            lambda i: next(iter(next(iter(i["terms"]["OnDemand"].values()))["priceDimensions"].values())).__setitem__(
                "pricePerUnit", {"USD": "abc"}
            ),
            "bad_price",
        ),
    ],
)
def test_item_faults_name_their_reason(mutate: Any, reason: str) -> None:
    item = p5_item()
    mutate(item)
    with pytest.raises(ItemError) as err:
        parse_item(json.dumps(item), "us-east-1")
    assert err.value.reason == reason


def test_gpu_memory_units() -> None:
    assert gpu_memory_gb(22888) == 24.0  # L4 / A10G: decimal GB in MiB
    assert gpu_memory_gb(45776) == 48.0  # L40S
    assert gpu_memory_gb(81920) == 80.0  # H100: GiB
    assert gpu_memory_gb(144384) == 141.0  # H200


def test_instance_type_specs_from_recorded_moto_dump(payloads: Path) -> None:
    rows = json.loads((payloads / "aws" / "ec2_describe_instance_types_gpu_from_moto.json").read_text())
    specs = parse_instance_types(rows["InstanceTypes"])
    assert specs["p5e.48xlarge"].name == "H200"
    assert (specs["p4de.24xlarge"].count, specs["p4de.24xlarge"].memory_gb) == (8, 80.0)
    assert specs["g6.xlarge"].memory_gb == 24.0
    assert specs["p5.48xlarge"].vcpus == 192


# ---- the full poll --------------------------------------------------------------------------------------
def test_fetch_pages_prices_specs_and_filters() -> None:
    stubs = Stubs()
    expected = {
        "ServiceCode": "AmazonEC2",
        "FormatVersion": "aws_v1",
        "Filters": pricing_filters("us-east-1"),
        "MaxResults": 100,
    }
    stubs.ok(
        "pricing",
        "us-east-1",
        "get_products",
        load("pricing_page_us-east-1_1_constructed.json") | {"NextToken": "tok-2"},
        expected,
    )
    stubs.ok(
        "pricing",
        "us-east-1",
        "get_products",
        load("pricing_page_us-east-1_2_constructed.json"),
        expected | {"NextToken": "tok-2"},
    )
    stubs.ok("ec2", "us-east-1", "describe_instance_types", specs_page())
    snap, _ = run(stubs, **ONLY_PRICES)
    assert snap.complete and not snap.rejected
    prices = {o.key.instance_type: o for o in snap.observations}
    assert prices["p5.48xlarge"].hourly_usd == Decimal("55.04")
    assert (prices["p5.48xlarge"].gpu_name, prices["p5.48xlarge"].gpu_count) == ("H100", 8)
    assert prices["p4d.24xlarge"].gpu_memory_gb == 40.0
    assert prices["p5.4xlarge"].gpu_count == 1
    assert {f["Field"] for f in pricing_filters("x")} >= {"capacitystatus", "preInstalledSw", "tenancy"}


def test_spot_one_offer_per_zone_latest_price_and_band() -> None:
    stubs = Stubs()
    stubs.ok("pricing", "us-east-1", "get_products", pricing_page(p5_item()))
    stubs.ok("ec2", "us-east-1", "describe_instance_types", specs_page())
    rows = [
        {
            "AvailabilityZone": "us-east-1a",
            "InstanceType": "p5.48xlarge",
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": "14.582000",
            "Timestamp": datetime(2026, 9, 1, 10, tzinfo=UTC),
        },
        {
            "AvailabilityZone": "us-east-1a",
            "InstanceType": "p5.48xlarge",
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": "20.000000",
            "Timestamp": datetime(2026, 9, 1, 8, tzinfo=UTC),
        },
        {
            "AvailabilityZone": "us-east-1b",
            "InstanceType": "p5.48xlarge",
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": "47.205400",
            "Timestamp": datetime(2026, 9, 1, 9, tzinfo=UTC),
        },
    ]
    stubs.ok(
        "ec2",
        "us-east-1",
        "describe_spot_price_history",
        {"SpotPriceHistory": rows[:2], "NextToken": "s2"},
        {"InstanceTypes": ["p5.48xlarge"], "ProductDescriptions": ["Linux/UNIX"], "StartTime": NOW, "MaxResults": 1000},
    )
    stubs.ok("ec2", "us-east-1", "describe_spot_price_history", {"SpotPriceHistory": rows[2:]})
    # the test's own advisor document (the recorded excerpt has no GPU types): it exercises the band mechanics
    feed = {
        "ranges": [
            {"index": 0, "label": "<5%", "dots": 0, "max": 5},
            {"index": 2, "label": "10-15%", "dots": 2, "max": 16},
        ],
        "spot_advisor": {"us-east-1": {"Linux": {"p5.48xlarge": {"s": 73, "r": 2}}}},
    }
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=feed)))
    snap, _ = run(stubs, regions=["us-east-1"], savings_plans=False, spot_advisor=True, http=http)
    spot = {o.key.zone: o for o in snap.observations if o.key.purchase == "spot"}
    assert set(spot) == {"us-east-1a", "us-east-1b"}
    assert spot["us-east-1a"].hourly_usd == Decimal("14.582000")  # the later point wins
    assert spot["us-east-1a"].attrs["interruption_band"] == "10-15%"
    assert spot["us-east-1a"].attrs["interruption_rate_per_hour"] == pytest.approx(-math.log(1 - 0.16) / 730)


def test_savings_plans_paged_on_next_token() -> None:
    stubs = Stubs()
    stubs.ok("pricing", "us-east-1", "get_products", pricing_page(p5_item()))
    stubs.ok("ec2", "us-east-1", "describe_instance_types", specs_page())
    pages = load("savingsplans_rates_constructed.json")
    stubs.ok("savingsplans", "us-east-1", "describe_savings_plans_offering_rates", pages[0])
    stubs.ok("savingsplans", "us-east-1", "describe_savings_plans_offering_rates", pages[1])
    snap, _ = run(stubs, regions=["us-east-1"], spot=False)
    sp = {o.key: o.hourly_usd for o in snap.observations if o.key.purchase == "savings_plan"}
    compute = OfferKey(
        "aws", "us-east-1", "p5.48xlarge", "savings_plan", term="1y", payment="no_upfront", plan="compute"
    )
    ec2 = OfferKey(
        "aws", "us-east-1", "p5.48xlarge", "savings_plan", term="3y", payment="all_upfront", plan="ec2_instance"
    )
    assert sp == {
        compute: Decimal(pages[0]["searchResults"][0]["rate"]),
        ec2: Decimal(pages[1]["searchResults"][0]["rate"]),
    }
    assert snap.rejected == Counter({"non_usd": 1})  # the CNY offering


# ---- faults ---------------------------------------------------------------------------------------------
def test_throttling_is_retried_with_backoff() -> None:
    stubs = Stubs()
    stubs.error("pricing", "us-east-1", "get_products", "ThrottlingException")
    stubs.error("pricing", "us-east-1", "get_products", "ThrottlingException")
    stubs.ok("pricing", "us-east-1", "get_products", pricing_page(p5_item()))
    stubs.ok("ec2", "us-east-1", "describe_instance_types", specs_page())
    snap, sleeps = run(stubs, **ONLY_PRICES)
    assert sleeps == [1.0, 2.0]
    assert snap.complete and len(snap.observations) == 1


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_exhaust_into_source_error(status: int) -> None:
    stubs = Stubs()
    for _ in range(5):
        stubs.error("pricing", "us-east-1", "get_products", "InternalErrorException", status)
    with pytest.raises(SourceError, match="gave up after 5"):
        run(stubs, **ONLY_PRICES)


@pytest.mark.parametrize("code", ["UnrecognizedClientException", "AccessDeniedException", "ExpiredToken"])
def test_rejected_credentials_end_the_poll(code: str) -> None:
    stubs = Stubs()
    stubs.error("pricing", "us-east-1", "get_products", code, 403)
    with pytest.raises(SourceError, match="credentials rejected"):
        run(stubs, **ONLY_PRICES)


def test_missing_credentials_checked_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    assert "no AWS credentials" in (AwsSource(ctx()).missing_credentials() or "")
    with_keys = SourceContext(
        name="aws",
        options={},
        env={"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
        catalog=GpuCatalog([]),
        config_dir=Path("."),
    )
    assert AwsSource(with_keys).missing_credentials() is None


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="https://api.pricing.us-east-1.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://api.pricing.us-east-1.amazonaws.com"),
    ],
)
def test_connection_errors_and_timeouts(exc: Exception) -> None:
    def boom(service: str, region: str) -> Any:
        class Client:
            def get_products(self, **_: Any) -> Any:
                raise exc

        return Client()

    with pytest.raises(SourceError, match="gave up"):
        AwsSource(ctx(**ONLY_PRICES), clients=boom, sleep=lambda s: None).fetch()


def test_expired_token_mid_listing_gives_incomplete_snapshot() -> None:
    stubs = Stubs()
    stubs.ok("pricing", "us-east-1", "get_products", pricing_page(p5_item(), token="t2"))
    stubs.error("pricing", "us-east-1", "get_products", "ExpiredNextTokenException")
    stubs.ok("ec2", "us-east-1", "describe_instance_types", specs_page())
    snap, _ = run(stubs, **ONLY_PRICES)
    assert not snap.complete
    assert len(snap.observations) == 1
    assert any("pagination token" in w for w in snap.warnings)


def test_page_failing_mid_listing_gives_incomplete_snapshot() -> None:
    stubs = Stubs()
    stubs.ok("pricing", "us-east-1", "get_products", pricing_page(p5_item(), token="t2"))
    for _ in range(5):
        stubs.error("pricing", "us-east-1", "get_products", "ServiceUnavailable", 503)
    stubs.ok("ec2", "us-east-1", "describe_instance_types", specs_page())
    snap, _ = run(stubs, **ONLY_PRICES)
    assert not snap.complete and len(snap.observations) == 1


def test_bad_rows_are_counted_not_raised() -> None:
    stubs = Stubs()
    zero, negative, renamed = p5_item("0.0000000000"), p5_item("-1.0"), p5_item()
    zero["product"]["attributes"]["instanceType"] = "p4d.24xlarge"
    negative["product"]["attributes"]["instanceType"] = "p4de.24xlarge"
    renamed["product"]["attributes"]["instance_type"] = renamed["product"]["attributes"].pop("instanceType")
    stubs.ok("pricing", "us-east-1", "get_products", pricing_page(p5_item(), "{not json", zero, negative, renamed))
    stubs.ok("ec2", "us-east-1", "describe_instance_types", specs_page())
    snap, _ = run(stubs, **ONLY_PRICES)
    assert snap.rejected == Counter({"malformed_json": 1, "non_positive_price": 2, "missing_field": 1})
    assert [o.key.instance_type for o in snap.observations] == ["p5.48xlarge"]


def test_type_without_gpu_spec_is_counted() -> None:
    stubs = Stubs()
    stubs.ok("pricing", "us-east-1", "get_products", pricing_page(p5_item()))
    stubs.ok("ec2", "us-east-1", "describe_instance_types", {"InstanceTypes": []})
    snap, _ = run(stubs, **ONLY_PRICES)
    assert snap.rejected == Counter({"no_gpu_spec": 1})


def test_spot_rows_and_advisor_parsing(payloads: Path) -> None:
    rows = json.loads((payloads / "aws" / "ec2_describe_spot_price_history_eu-north-1_excerpt.json").read_text())
    rejected: Counter[str] = Counter()
    latest = current_spot(spot_points(rows["SpotPriceHistory"] + [{"SpotPrice": "1"}], "eu-north-1", rejected))
    assert rejected == Counter({"spot_missing_field": 1})
    key = OfferKey("aws", "eu-north-1", "m6idn.large", "spot", zone="eu-north-1a")
    assert latest[key].price == Decimal("0.053100")  # 2024-05-08T08:31 beats the earlier points
    bands = advisor_bands(json.loads((payloads / "aws" / "spot_advisor_data_excerpt.json").read_text()))
    assert bands[("eu-north-1", "r5dn.24xlarge")].label == "10-15%"
    assert bands[("eu-north-1", "t3.large")].hourly_rate() == pytest.approx(-math.log(0.95) / 730)


def test_savings_rates_skip_dedicated_and_count_unknown() -> None:
    page = load("savingsplans_rates_constructed.json")[0]["searchResults"][0]
    dedicated = json.loads(json.dumps(page))
    dedicated["usageType"] = "DedicatedUsage:p5.48xlarge"
    odd = json.loads(json.dumps(page))
    odd["savingsPlanOffering"]["durationSeconds"] = 12
    rejected: Counter[str] = Counter()
    assert len(savings_rates([page, dedicated, odd], rejected)) == 1
    assert rejected == Counter({"sp_unknown_offering": 1})


# ---- demo and backfill ----------------------------------------------------------------------------------
def test_demo_replays_recorded_pages() -> None:
    demo_ctx = SourceContext(name="aws", options={}, env={}, catalog=GpuCatalog([]), config_dir=Path("."), demo=True)
    snap = AwsSource(demo_ctx).fetch()
    again = AwsSource(demo_ctx).fetch()  # the scheduler's polls after the first, in the same process
    assert snap.demo and snap.complete and again.complete and not again.warnings
    assert [(o.key, o.hourly_usd) for o in again.observations] == [(o.key, o.hourly_usd) for o in snap.observations]
    purchases = Counter(o.key.purchase for o in snap.observations)
    assert purchases["on_demand"] == 8 and purchases["spot"] == 19
    p5 = [o for o in snap.observations if o.key == OfferKey("aws", "us-east-1", "p5.48xlarge", "on_demand")]
    assert p5[0].hourly_usd == Decimal("55.04")


def test_spot_history_backfill_pages() -> None:
    stubs = Stubs()
    rows = [
        {
            "AvailabilityZone": "us-east-1a",
            "InstanceType": "p5.48xlarge",
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": "14.5",
            "Timestamp": datetime(2026, 8, 30, tzinfo=UTC),
        },
        {
            "AvailabilityZone": "us-east-1a",
            "InstanceType": "m5.large",
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": "0.04",
            "Timestamp": datetime(2026, 8, 30, tzinfo=UTC),
        },
    ]
    stubs.ok("ec2", "us-east-1", "describe_spot_price_history", {"SpotPriceHistory": rows[:1], "NextToken": "n"})
    stubs.ok("ec2", "us-east-1", "describe_spot_price_history", {"SpotPriceHistory": rows[1:]})
    got = list(iter_spot_history(ctx(regions=["us-east-1"]), 7, clients=stubs, sleep=lambda s: None))
    stubs.done()
    assert got == [
        (
            OfferKey("aws", "us-east-1", "p5.48xlarge", "spot", zone="us-east-1a"),
            datetime(2026, 8, 30, tzinfo=UTC),
            Decimal("14.5"),
        )
    ]
