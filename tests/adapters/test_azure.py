"""Azure Retail Prices adapter: real recorded rows, constructed GPU pages, paging and every fault."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.azure import FRACTIONAL, VM_SIZES, AzureSource, odata_filter
from adapters.base import SourceContext
from broker.domain import Availability, ConfigError, OfferKey, Payment, Purchase, Snapshot, SourceError
from broker.gpus import GpuCatalog

FIXTURES = Path(__file__).parent / "fixtures" / "azure"
# Push the real recorded B16als_v2 rows (a CPU size) through the GPU parsing path by giving the size a table entry.
B16 = {"Standard_B16als_v2": {"gpu": "T4", "count": 1, "gpu_memory_gb": 16}}

B16_ROWS = "retail_prices_items_B16als_v2_australiacentral_lowpri_consumption_savingsplan_reservation.json"

Handler = Callable[[httpx.Request], httpx.Response]


def ctx(handler: Handler | None = None, *, demo: bool = False, **options: Any) -> SourceContext:
    http = httpx.Client(transport=httpx.MockTransport(handler)) if handler else None
    return SourceContext(
        name="azure", options=options, env={}, catalog=GpuCatalog([]), config_dir=Path("."), demo=demo, http=http
    )


def source(handler: Handler | None = None, *, sleeps: list[float] | None = None, **options: Any) -> AzureSource:
    record = sleeps if sleeps is not None else []
    return AzureSource(ctx(handler, **options), sleep=record.append)


def json_response(body: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def pages(*bodies: Any) -> tuple[Handler, list[httpx.Request]]:
    """Serve ``bodies`` in order: page N's NextPageLink (if any) is rewritten to ask for page N+1."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        index = int(request.url.params.get("page", "0"))
        body = bodies[index]
        if isinstance(body, httpx.Response):
            return body
        if isinstance(body, dict):
            more = index + 1 < len(bodies)
            body = {
                **body,
                "NextPageLink": f"https://prices.azure.com:443/api/retail/prices?page={index + 1}" if more else None,
            }
        return json_response(body)

    return handle, seen


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def constructed() -> tuple[dict[str, Any], dict[str, Any]]:
    return load(FIXTURES / "gpu_rows_constructed_page1.json"), load(FIXTURES / "gpu_rows_constructed_page2.json")


def by_key(snap: Snapshot) -> dict[tuple[str, str, str, str], Decimal]:
    return {(o.key.instance_type, o.key.purchase, o.key.term, o.key.region): o.hourly_usd for o in snap.observations}


# --- real recorded payloads ------------------------------------------------------------------------------


def test_recorded_b16als_rows_give_known_hourly_prices(payloads: Path) -> None:
    body = load(payloads / "azure" / B16_ROWS)
    handler, _ = pages(body)
    snap = source(handler, vm_sizes=B16).fetch()

    prices = by_key(snap)
    assert prices == {
        ("Standard_B16als_v2", "on_demand", "", "australiacentral"): Decimal("0.673"),
        ("Standard_B16als_v2", "savings_plan", "1y", "australiacentral"): Decimal("0.49129"),
        ("Standard_B16als_v2", "savings_plan", "3y", "australiacentral"): Decimal("0.34323"),
        # the reservation row's 3478.0 is the 1-year total: 3478 / 8760 h
        ("Standard_B16als_v2", "reserved", "1y", "australiacentral"): Decimal("0.397032"),
    }
    assert abs(prices[("Standard_B16als_v2", "reserved", "1y", "australiacentral")] - Decimal(3478) / 8760) < Decimal(
        "0.000001"
    )
    reserved = next(o for o in snap.observations if o.key.purchase == "reserved")
    assert reserved.key.payment == Payment.ALL_UPFRONT
    assert reserved.attrs["term_total_usd"] == "3478.0"
    assert snap.complete and not snap.rejected  # the Low Priority Cloud Services row is dropped, not refused


def test_recorded_rows_for_a_size_missing_from_the_table_are_refused_not_guessed(payloads: Path) -> None:
    body = load(payloads / "azure" / B16_ROWS)
    handler, _ = pages(body)
    with pytest.raises(SourceError, match=r"no usable GPU VM price.*'unknown VM size': 2"):
        source(handler).fetch()


def test_all_thirteen_recorded_rows_keep_exactly_linux_on_demand_spot_and_reservations(payloads: Path) -> None:
    projection = load(payloads / "azure" / "retail_prices_all_rows_for_one_sku_projection.json")
    # the projection keeps only some columns; the currency is the listing's (USD)
    rows = [{**r, "currencyCode": "USD"} for r in projection["rows"]]
    handler, _ = pages({"Items": rows, "NextPageLink": None})
    snap = source(handler, vm_sizes=B16).fetch()

    assert by_key(snap) == {
        ("Standard_B16als_v2", "on_demand", "", "australiacentral"): Decimal("0.673"),
        ("Standard_B16als_v2", "spot", "", "australiacentral"): Decimal("0.6057"),
        ("Standard_B16als_v2", "reserved", "1y", "australiacentral"): Decimal("0.397032"),
        ("Standard_B16als_v2", "reserved", "3y", "australiacentral"): Decimal("0.255746"),  # 6721 / 26280 h
    }


def test_recorded_2022_envelope_follows_next_page_link_and_drops_windows_devtest(payloads: Path) -> None:
    first = load(payloads / "azure" / "retail_prices_envelope_with_spot_devtest_item_2022.json")
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return json_response(first if "$skip" not in request.url.params else {"Items": [], "NextPageLink": None})

    with pytest.raises(SourceError, match="no usable GPU VM price"):  # its only row is a Windows DevTest meter
        source(handle, vm_sizes={"Standard_D14": {"gpu": "T4", "count": 1, "gpu_memory_gb": 16}}).fetch()
    assert [r.url.params.get("$skip") for r in seen] == [None, "100"]


# --- constructed GPU pages -------------------------------------------------------------------------------


def test_constructed_gpu_pages_every_purchase_option_and_refusals() -> None:
    handler, seen = pages(*constructed())
    snap = source(handler).fetch()

    prices = by_key(snap)
    h100 = "Standard_ND96isr_H100_v5"
    assert prices[(h100, "on_demand", "", "eastus")] == Decimal("98.32")
    assert prices[(h100, "spot", "", "eastus")] == Decimal("19.664")
    assert prices[(h100, "savings_plan", "1y", "eastus")] == Decimal("75.7064")
    assert prices[(h100, "savings_plan", "3y", "eastus")] == Decimal("50.6348")
    assert prices[(h100, "reserved", "1y", "eastus")] == Decimal("65.874429")  # 577060 / 8760
    assert prices[(h100, "reserved", "3y", "eastus")] == Decimal("42.300000")  # 1111644 / 26280
    assert prices[("Standard_NC4as_T4_v3", "savings_plan", "1y", "eastus")] == Decimal("0.4050")
    # Windows, DevTest and Low Priority rows leave no trace; the 9.832 Low Priority price must not appear
    assert Decimal("9.832") not in prices.values() and Decimal("110.2") not in prices.values()
    assert len(snap.observations) == 6 + 3 + 1
    assert snap.rejected == {"fractional GPU VM size": 1, "unknown VM size": 1}
    assert any("Standard_ND128isr_NDR_GB200_v6" in w for w in snap.warnings)
    assert snap.complete and not snap.demo

    h100_obs = next(o for o in snap.observations if o.key == OfferKey("azure", "eastus", h100, "on_demand"))
    assert (h100_obs.gpu_name, h100_obs.gpu_count, h100_obs.gpu_memory_gb) == ("H100 SXM", 8, 80)
    assert h100_obs.availability == Availability.UNKNOWN
    nvl = next(o for o in snap.observations if o.key.instance_type == "Standard_NC40ads_H100_v5")
    assert (nvl.gpu_name, nvl.gpu_count, nvl.gpu_memory_gb) == ("H100 NVL", 1, 94)

    first = seen[0].url.params
    assert first["api-version"] == "2023-01-01-preview"
    assert first["$filter"] == odata_filter(None)
    assert "contains(productName, 'Windows') eq false" in first["$filter"]
    assert len(seen) == 2


def test_configured_regions_are_listed_one_by_one() -> None:
    page1, page2 = constructed()
    filters: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        filters.append(request.url.params["$filter"])
        return json_response({"Items": page2["Items"] if "westus" in filters[-1] else page1["Items"]})

    snap = source(handle, regions=["eastus", "westus2"]).fetch()
    assert filters == [odata_filter("eastus"), odata_filter("westus2")]
    assert filters[1].endswith("armRegionName eq 'westus2'")
    assert snap.complete and snap.observations


def test_the_default_table_documents_the_sizes_the_brief_names() -> None:
    assert (VM_SIZES["Standard_ND96asr_v4"].count, VM_SIZES["Standard_ND96asr_v4"].gpu_memory_gb) == (8, 40)
    assert (VM_SIZES["Standard_ND96amsr_A100_v4"].count, VM_SIZES["Standard_ND96amsr_A100_v4"].gpu_memory_gb) == (8, 80)
    assert (VM_SIZES["Standard_NC24ads_A100_v4"].count, VM_SIZES["Standard_NC24ads_A100_v4"].gpu_memory_gb) == (1, 80)
    assert VM_SIZES["Standard_NC40ads_H100_v5"].gpu == "H100 NVL"
    assert VM_SIZES["Standard_NC4as_T4_v3"].count == 1
    assert not FRACTIONAL & VM_SIZES.keys()


def test_demo_mode_replays_the_projects_recorded_pages() -> None:
    snap = AzureSource(ctx(demo=True), sleep=lambda _: None).fetch()
    assert snap.demo and snap.complete
    regions = {o.key.region for o in snap.observations}
    assert regions == {"eastus", "westeurope"}
    assert by_key(snap)[("Standard_NC24ads_A100_v4", "on_demand", "", "eastus")] == Decimal("3.673")


# --- faults ----------------------------------------------------------------------------------------------


def raising(exc: Exception) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc

    return handle


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (raising(httpx.ReadTimeout("slow")), "timed out"),
        (raising(httpx.ConnectError("Connection refused")), "cannot connect"),
        (lambda r: httpx.Response(500, text="oops"), "HTTP 500"),
        (lambda r: httpx.Response(503), "HTTP 503"),
        (lambda r: httpx.Response(429, headers={"Retry-After": "2"}), "rate limited"),
        (lambda r: httpx.Response(200, content=b"{not json"), "not valid JSON"),
        (lambda r: json_response({"items": []}), "no 'Items' list"),
        (lambda r: httpx.Response(401, json={"error": "nope"}), "credentials rejected"),
    ],
)
def test_a_failed_first_page_is_a_source_error(handler: Handler, message: str) -> None:
    sleeps: list[float] = []
    with pytest.raises(SourceError, match=message):
        source(handler, sleeps=sleeps).fetch()
    assert len(sleeps) <= 3  # bounded retries, no real waiting


def test_429_honours_retry_after_then_succeeds() -> None:
    _, page2 = constructed()
    calls = iter([httpx.Response(429, headers={"Retry-After": "7"}), json_response({**page2, "NextPageLink": None})])
    sleeps: list[float] = []
    snap = source(lambda r: next(calls), sleeps=sleeps).fetch()
    assert sleeps == [7.0]
    assert snap.complete and len(snap.observations) == 4


@pytest.mark.parametrize(
    "bad_page",
    [httpx.Response(503), httpx.Response(200, content=b"<html>"), json_response({"Items": "nope"})],
)
def test_a_failed_page_in_the_middle_makes_the_snapshot_incomplete(bad_page: httpx.Response) -> None:
    page1, _ = constructed()
    handler, _ = pages(page1, bad_page)
    snap = source(handler).fetch()
    assert not snap.complete
    assert any("page 2" in w for w in snap.warnings)
    assert by_key(snap)[("Standard_ND96isr_H100_v5", "on_demand", "", "eastus")] == Decimal("98.32")


def test_an_empty_page_in_the_middle_does_not_stop_paging() -> None:
    page1, page2 = constructed()
    handler, seen = pages(page1, {"Items": []}, page2)
    snap = source(handler).fetch()
    assert len(seen) == 3 and snap.complete
    assert ("Standard_NC4as_T4_v3", "on_demand", "", "eastus") in by_key(snap)


def test_endless_paging_stops_at_max_pages_as_incomplete() -> None:
    page1, _ = constructed()
    loop = {**page1, "NextPageLink": "https://prices.azure.com/api/retail/prices?$skip=1000"}
    snap = source(lambda r: json_response(loop), max_pages=3).fetch()
    assert not snap.complete and any("max_pages" in w for w in snap.warnings)


def test_renamed_or_missing_fields_are_counted_not_fatal() -> None:
    page1, _ = constructed()
    rows = page1["Items"]
    renamed = {("retail_price" if k == "retailPrice" else k): v for k, v in rows[0].items()}
    no_region = {k: v for k, v in rows[1].items() if k != "armRegionName"}
    bad_term = {**rows[2], "reservationTerm": "5 Years"}
    bad_plan = {**rows[0], "armRegionName": "westus", "savingsPlan": [{"term": "1 Year"}]}
    body = {"Items": [renamed, no_region, bad_term, bad_plan, "not a row", *rows[3:]]}
    snap = source(lambda r: json_response(body)).fetch()
    assert snap.rejected == {
        "missing field retailPrice": 1,
        "missing field armRegionName": 1,
        "unknown reservation term": 1,
        "malformed savingsPlan": 1,
        "malformed row": 1,
        "fractional GPU VM size": 1,
    }
    assert ("Standard_ND96isr_H100_v5", "on_demand", "", "westus") in by_key(snap)  # the good part of bad_plan


@pytest.mark.parametrize("price", [0, -1.5])
def test_zero_and_negative_prices_pass_through_for_ingest_to_refuse(price: float) -> None:
    page1, _ = constructed()
    row = {**page1["Items"][0], "retailPrice": price, "savingsPlan": []}
    snap = source(lambda r: json_response({"Items": [row]})).fetch()
    assert [o.hourly_usd for o in snap.observations] == [Decimal(str(price))]
    assert not snap.rejected  # ingest is the one place that refuses prices <= 0


def test_a_price_that_is_not_a_number_is_refused_here() -> None:
    page1, _ = constructed()
    row = {**page1["Items"][0], "retailPrice": "abc", "savingsPlan": []}
    with pytest.raises(SourceError, match="'price is not a number': 1"):
        source(lambda r: json_response({"Items": [row]})).fetch()


def test_other_currencies_pass_through_for_ingest_to_refuse() -> None:
    page1, _ = constructed()
    row = {**page1["Items"][0], "currencyCode": "EUR"}
    snap = source(lambda r: json_response({"Items": [row]})).fetch()
    assert {o.currency for o in snap.observations} == {"EUR"}


def test_no_credentials_needed() -> None:
    assert source().missing_credentials() is None


def test_spot_rows_are_spot_even_when_only_the_meter_says_so() -> None:
    page1, _ = constructed()
    row = {**page1["Items"][1], "skuName": "ND96isr H100 v5"}  # meterName still ends in " Spot"
    snap = source(lambda r: json_response({"Items": [row]})).fetch()
    assert [o.key.purchase for o in snap.observations] == [Purchase.SPOT]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"regions": "eastus"}, "option regions"),
        ({"max_pages": 0}, "option max_pages"),
        ({"vm_sizes": {"Standard_X": {"gpu": "T4"}}}, "option vm_sizes.Standard_X"),
    ],
)
def test_bad_options_are_config_errors_naming_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        source(**options)
