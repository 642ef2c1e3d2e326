"""Crusoe adapter: request signing (known answer), specs + capacities + rate card, demo mode and faults."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.base import SourceContext
from adapters.crusoe import CrusoeSource, canonical_query, sign, signing_message
from adapters.ratecard import load_ratecard
from broker.domain import Availability, Purchase, SourceError
from broker.gpus import GpuCatalog

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "crusoe"
NOW = datetime(2026, 11, 27, tzinfo=UTC)
SECRET = "Y3J1c29lLXRlc3Qtc2VjcmV0LWtleS0wMTIzNDU2Nzg5"  # base64url of b"crusoe-test-secret-key-0123456789"
ENV = {"CRUSOE_ACCESS_KEY": "AKEXAMPLE", "CRUSOE_SECRET_KEY": SECRET, "CRUSOE_PROJECT_ID": "p-1"}
HEADER = """
name = "crusoe-test"
provider = "crusoe"
kind = "list"
currency = "USD"
effective_date = "2026-08"
valid_until = 2027-02-01
source = "https://www.crusoe.ai/cloud/pricing"
"""
CARD = f"""{HEADER}
[[entries]]
gpu = "H100-SXM-80GB"
usd_per_gpu_hour = "3.90"
[[entries]]
gpu = "H100-SXM-80GB"
purchase = "spot"
usd_per_gpu_hour = "1.60"
source = "https://www.crusoe.ai/cloud/pricing#spot"
[[entries]]
gpu = "L40S-48GB"
usd_per_gpu_hour = 1.0
effective_date = 2026-09-01
[[entries]]
gpu = "nothing-matches"
instance_family = "a100-80gb"
usd_per_gpu_hour = "1.65"
[[entries]]
gpu = "MI300X-192GB"
usd_per_gpu_hour = "3.45"
"""

Handler = Callable[[httpx.Request], httpx.Response]


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_card(tmp_path: Path, text: str = CARD) -> Path:
    (tmp_path / "ratecards").mkdir(exist_ok=True)
    (tmp_path / "ratecards" / "crusoe.toml").write_text(text, encoding="utf-8")
    return tmp_path


def source(
    handler: Handler | None, config_dir: Path, *, env: dict[str, str] | None = None, demo: bool = False,
    sleeps: list[float] | None = None, **options: Any,
) -> CrusoeSource:  # fmt: skip
    http = httpx.Client(transport=httpx.MockTransport(handler)) if handler else None
    ctx = SourceContext(
        name="crusoe",
        options=options,
        env=ENV if env is None else env,
        catalog=GpuCatalog([]),
        config_dir=config_dir,
        demo=demo,
        http=http,
        now=lambda: NOW,
    )
    return CrusoeSource(ctx, sleep=(sleeps if sleeps is not None else []).append)


def api(types: Any, capacities: Any, seen: list[httpx.Request] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if request.url.path.endswith("/compute/vms/types"):
            return types if isinstance(types, httpx.Response) else httpx.Response(200, json=types)
        if request.url.path == "/v1/capacities":
            return capacities if isinstance(capacities, httpx.Response) else httpx.Response(200, json=capacities)
        return httpx.Response(404, json={"code": "404", "message": "not found"})

    return handle


def constructed_api(seen: list[httpx.Request] | None = None) -> Handler:
    return api(load(FIXTURES / "vms_types_constructed.json"), load(FIXTURES / "capacities_constructed.json"), seen)


# --- signing ---------------------------------------------------------------------------------------------


def test_signature_known_answer() -> None:
    url = httpx.URL(
        "https://api.cloud.crusoe.ai/v1/capacities", params={"product_name": "a100.2x,h100", "location": "us-east1-a"}
    )
    message = signing_message("get", url, "2026-11-27T00:00:00Z")
    assert message == "/v1/capacities\nlocation=us-east1-a&product_name=a100.2x%2Ch100\nGET\n2026-11-27T00:00:00Z\n"
    headers = sign("GET", url, "2026-11-27T00:00:00Z", "AKEXAMPLE", SECRET)
    # computed independently: printf MESSAGE | openssl dgst -sha256 -mac HMAC -macopt hexkey:... | base64url
    assert headers == {
        "X-Crusoe-Timestamp": "2026-11-27T00:00:00Z",
        "Authorization": "Bearer 1.0:AKEXAMPLE:SzBl6F2_zo4bBTaW2wF91T-0lPjPXewB826uAD_IMSQ",
    }


def test_canonical_query_sorts_keys_and_keeps_repeats() -> None:
    url = httpx.URL("https://x/v1/a?b=2&a=z%20y&b=1&c=")
    assert canonical_query(url) == "a=z+y&b=2&b=1&c="
    assert canonical_query(httpx.URL("https://x/v1/a")) == ""


def test_requests_carry_a_valid_signature(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    source(constructed_api(seen), write_card(tmp_path)).fetch()
    types = seen[0]
    assert types.url.path == "/v1/projects/p-1/compute/vms/types"
    assert types.headers["X-Crusoe-Timestamp"] == "2026-11-27T00:00:00Z"
    assert types.headers["Authorization"] == "Bearer 1.0:AKEXAMPLE:qE4GAC1XFK8U1zD9ar55CkQ9QZ9WZWmNx3TiN-bKfeg"
    assert seen[1].url.path == "/v1/capacities"


def test_a_secret_that_is_not_base64url_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="CRUSOE_SECRET_KEY is not valid base64url"):
        source(constructed_api(), write_card(tmp_path), env={**ENV, "CRUSOE_SECRET_KEY": "a"}).fetch()


# --- parsing ---------------------------------------------------------------------------------------------


def test_constructed_types_capacities_and_rate_card(tmp_path: Path) -> None:
    snap = source(constructed_api(), write_card(tmp_path)).fetch()
    offers = {(o.key.instance_type, o.key.region, o.key.purchase): o for o in snap.observations}

    h100 = offers[("h100-80gb-sxm-ib.8x", "us-southcentral1-a", "on_demand")]
    assert h100.hourly_usd == Decimal("31.20")  # 8 GPUs x 3.90 per GPU-hour
    assert (h100.availability, h100.available_quantity) == (Availability.AVAILABLE, 2)
    assert (h100.gpu_name, h100.gpu_count, h100.gpu_memory_gb, h100.vcpus) == ("H100-SXM-80GB", 8, 80, 176)
    assert h100.attrs["price_source"] == "ratecard:ratecards/crusoe.toml"
    assert h100.attrs["price_source_url"] == "https://www.crusoe.ai/cloud/pricing"
    assert h100.attrs["price_effective_date"] == "2026-08-01"  # the card's "2026-08"
    iceland = offers[("h100-80gb-sxm-ib.8x", "eu-iceland1-a", "on_demand")]
    assert (iceland.availability, iceland.available_quantity) == (Availability.UNAVAILABLE, 0)
    spot = offers[("h100-80gb-sxm-ib.8x", "us-southcentral1-a", "spot")]
    assert spot.hourly_usd == Decimal("12.80") and spot.availability == Availability.UNKNOWN
    assert spot.attrs["price_source_url"] == "https://www.crusoe.ai/cloud/pricing#spot"  # its own entry's source

    l40s = offers[("l40s-48gb.8x", "us-southcentral1-a", "on_demand")]
    assert l40s.hourly_usd == Decimal("8.0")  # TOML float 1.0
    assert l40s.attrs["price_effective_date"] == "2026-09-01"  # the entry's own date
    assert offers[("a100-80gb.8x", "us-east1-a", "on_demand")].hourly_usd == Decimal("13.20")  # by product prefix
    assert ("l40s-48gb.1x", "us-east1-a", "spot") not in offers  # no spot price on the card
    assert not any(o.key.instance_type.startswith("c1a") for o in snap.observations)  # CPU: not a GPU offer
    assert snap.rejected == {"no rate card price": 1}  # the B200 type: refused, not guessed
    assert any("b200-180gb-sxm-ib.8x (B200-SXM-180GB)" in w for w in snap.warnings)
    assert any("mi300x-192gb-ib.8x" in w and "/capacities" in w for w in snap.warnings)
    assert snap.complete and not snap.demo


def test_recorded_swagger_examples(payloads: Path, tmp_path: Path) -> None:
    types = load(payloads / "crusoe" / "v1_projects_compute_vms_types_swagger_example.json")
    capacities = load(payloads / "crusoe" / "v1_capacities_swagger_example.json")
    # the example's gpu_type "A100" is on no real card: refused, never guessed
    with pytest.raises(SourceError, match="'no rate card price': 1"):
        source(api(types, capacities), write_card(tmp_path)).fetch()

    card = CARD + '[[entries]]\ngpu = "A100"\nusd_per_gpu_hour = "1.45"\n'
    snap = source(api(types, capacities), write_card(tmp_path, card)).fetch()
    [offer] = snap.observations
    assert (offer.key.instance_type, offer.key.region, offer.key.purchase) == ("a100.2x", "us-east", "on_demand")
    assert offer.hourly_usd == Decimal("2.90")
    assert (offer.availability, offer.available_quantity, offer.gpu_count) == (Availability.AVAILABLE, 8, 2)
    assert (offer.vcpus, offer.memory_gb) == (4, 16)


def test_recorded_401_is_a_credentials_error(payloads: Path, tmp_path: Path) -> None:
    body = load(payloads / "crusoe" / "v1_error_401_swagger_example.json")
    with pytest.raises(SourceError, match=r"credentials rejected.*clock"):
        source(api(httpx.Response(401, json=body), {}), write_card(tmp_path)).fetch()


def test_demo_mode_replays_payloads_with_the_projects_rate_card() -> None:
    src = source(None, ROOT / "config", env={}, demo=True)
    assert src.missing_credentials() is None
    snap = src.fetch()
    assert snap.demo and snap.complete and not snap.rejected
    assert {o.attrs["price_source"] for o in snap.observations} == {"ratecard:ratecards/crusoe.toml"}
    assert {o.key.region for o in snap.observations} == {"us-east1-a", "us-southcentral1-a", "eu-iceland1-a"}


def test_the_projects_rate_card_names_its_sources() -> None:
    card = load_ratecard(ROOT / "config" / "ratecards" / "crusoe.toml")
    assert (card.provider, card.currency) == ("crusoe", "USD") and isinstance(card.valid_until, date)
    assert card.entries and not card.discounts
    assert all(e.source.startswith("https://") and e.effective_date for e in card.entries)
    assert all(e.per_gpu and not e.is_offer for e in card.entries)  # GPU rates, priced x the API's num_gpu
    on_demand = {(e.gpu, e.instance_family): e.price for e in card.entries if e.purchase is Purchase.ON_DEMAND}
    spot = {(e.gpu, e.instance_family): e.price for e in card.entries if e.purchase is Purchase.SPOT}
    assert len(on_demand) + len(spot) == len(card.entries)  # one price per GPU and purchase, nothing else
    assert all(0 < price < on_demand[gpu] for gpu, price in spot.items())  # every spot under its on-demand


# --- faults ----------------------------------------------------------------------------------------------


def test_missing_credentials(tmp_path: Path) -> None:
    src = source(constructed_api(), write_card(tmp_path), env={"CRUSOE_ACCESS_KEY": "AK"})
    assert src.missing_credentials() == (
        "CRUSOE_SECRET_KEY, CRUSOE_PROJECT_ID not set (create an access key in the Crusoe console)"
    )
    with pytest.raises(SourceError, match="CRUSOE_SECRET_KEY, CRUSOE_PROJECT_ID not set"):
        src.fetch()


def raising(exc: Exception) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc

    return handle


TYPES_OK: dict[str, list[Any]] = {"items": []}


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (raising(httpx.ReadTimeout("slow")), "Crusoe instance types: timed out"),
        (raising(httpx.ConnectError("Connection refused")), "cannot connect"),
        (api(httpx.Response(500, json={"code": "500"}), {}), "HTTP 500"),
        (api(httpx.Response(429, headers={"Retry-After": "3"}), {}), "rate limited"),
        (api(httpx.Response(200, content=b"nope"), {}), "not valid JSON"),
        (api({"types": []}, {}), "no 'items' list"),
        # the types call worked, the second call did not: nothing is applied
        (api(TYPES_OK, httpx.Response(503)), "Crusoe capacities: HTTP 503"),
        (api(TYPES_OK, httpx.Response(200, content=b"{")), "Crusoe capacities: response is not valid JSON"),
        (api(TYPES_OK, {"items": []}), "no GPU instance type"),
    ],
)
def test_faults_end_in_source_error(handler: Handler, message: str, tmp_path: Path) -> None:
    sleeps: list[float] = []
    with pytest.raises(SourceError, match=message):
        source(handler, write_card(tmp_path), sleeps=sleeps).fetch()
    assert len(sleeps) <= 3


def test_429_honours_retry_after_then_succeeds(tmp_path: Path) -> None:
    good = constructed_api()
    first = [True]

    def handle(request: httpx.Request) -> httpx.Response:
        if first[0]:
            first[0] = False
            return httpx.Response(429, headers={"Retry-After": "4"})
        return good(request)

    sleeps: list[float] = []
    snap = source(handle, write_card(tmp_path), sleeps=sleeps).fetch()
    assert sleeps == [4.0] and snap.observations


def test_renamed_or_missing_fields_are_counted(tmp_path: Path) -> None:
    types = load(FIXTURES / "vms_types_constructed.json")
    capacities = load(FIXTURES / "capacities_constructed.json")
    types["items"][0].pop("num_gpu")
    types["items"][2]["gpu_type"] = None
    types["items"].append("junk")
    capacities["items"][0] = {"product": "a100-80gb.1x", "location": "us-east1-a", "quantity": 4}
    capacities["items"][5].pop("quantity")  # h100 us-southcentral1-a
    snap = source(api(types, capacities), write_card(tmp_path)).fetch()
    assert snap.rejected == {
        "missing field num_gpu": 1,
        "missing field gpu_type": 1,
        "malformed type row": 1,
        "malformed capacity row": 1,
        "no rate card price": 1,
    }
    h100 = next(
        o
        for o in snap.observations
        if o.key.region == "us-southcentral1-a"
        and o.key.purchase == "on_demand"
        and o.key.instance_type.startswith("h100")
    )
    assert (h100.availability, h100.available_quantity) == (Availability.UNKNOWN, None)


def test_offers_carry_usd_and_spot_can_be_left_out(tmp_path: Path) -> None:
    snap = source(constructed_api(), write_card(tmp_path), include_spot=False).fetch()
    assert snap.observations and {o.key.purchase for o in snap.observations} == {"on_demand"}
    assert {o.currency for o in snap.observations} == {"USD"}


@pytest.mark.parametrize(
    ("card", "message"),
    [
        (None, "option ratecard.*cannot read the rate card"),
        ("[[entries]\n", "not valid TOML"),
        (HEADER, "the card has no entries"),
        (HEADER.replace('name = "crusoe-test"\n', ""), "field 'name': is required"),
        (HEADER + '[[entries]]\ngpu = "X"\n', "a price is required"),
        (HEADER + '[[entries]]\ngpu = "X"\nusd_per_gpu_hour = "cheap"\n', "must be a number, got 'cheap'"),
        # a zero or negative price refuses the whole card at load, before anything reaches ingest
        (CARD.replace('"3.90"', '"0"'), "entry 1: field 'usd_per_gpu_hour': must be a positive number"),
        (CARD.replace('"3.90"', '"-1.5"'), "must be a positive number, got '-1.5'"),
        (CARD.replace('"USD"', '"EUR"'), "only USD cards are supported, got 'EUR'"),
        (CARD.replace('provider = "crusoe"', 'provider = "coreweave"'), "for provider 'coreweave', not 'crusoe'"),
    ],
)
def test_rate_card_problems_are_source_errors(card: str | None, message: str, tmp_path: Path) -> None:
    config_dir = write_card(tmp_path, card) if card is not None else tmp_path
    with pytest.raises(SourceError, match=message):
        source(constructed_api(), config_dir).fetch()


def test_an_expired_rate_card_still_prices_but_warns(tmp_path: Path) -> None:
    expired = CARD.replace("2027-02-01", "2026-01-01").replace('"2026-08"', '"2025-08"')  # valid_until >= effective
    snap = source(constructed_api(), write_card(tmp_path, expired)).fetch()
    assert snap.observations
    assert any("expired on 2026-01-01" in w for w in snap.warnings)


def test_ratecard_option_is_relative_to_the_config_dir(tmp_path: Path) -> None:
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "mine.toml").write_text(CARD, encoding="utf-8")
    snap = source(constructed_api(), tmp_path, ratecard="cards/mine.toml").fetch()
    assert {o.attrs["price_source"] for o in snap.observations} == {"ratecard:cards/mine.toml"}
