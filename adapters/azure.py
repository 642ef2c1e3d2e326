"""Azure Retail Prices API (no auth) -> GPU VM offers: on-demand, spot, reserved 1y/3y, savings plan 1y/3y.

The API prices meters, not machines: it never says how many GPUs a VM size has, so GPU specs come from the
``VM_SIZES`` table below (extendable with the ``vm_sizes`` option). A size missing from the table is counted as
rejected ("unknown VM size"), never guessed. Traps (provider-apis.md section 3): reservation ``retailPrice`` is
the total for the whole term although ``unitOfMeasure`` says "1 Hour"; ``savingsPlan[].retailPrice`` is hourly;
the response says ``type`` where the filter says ``priceType``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, ClassVar

import httpx

from adapters.base import Source, SourceContext
from adapters.http import client_for, get_json
from broker.domain import (
    TERM_HOURS,
    Availability,
    ConfigError,
    OfferKey,
    Payment,
    PriceObservation,
    Purchase,
    Snapshot,
    SourceError,
)

DEFAULT_BASE_URL = "https://prices.azure.com/api/retail/prices"
API_VERSION = "2023-01-01-preview"  # needed for savingsPlan[]; makes filter values case-sensitive
TERMS = {"1 Year": "1y", "3 Years": "3y"}
HOURLY_PLACES = Decimal("0.000001")  # amortised reservation rates: a millionth of a dollar is plenty


@dataclass(frozen=True, slots=True)
class VmSize:
    gpu: str  # model + form factor ("A100 PCIe"): the catalog tells same-memory A100s apart by it
    count: int
    gpu_memory_gb: float
    vcpus: float | None = None
    memory_gb: float | None = None


# Whole-GPU sizes, from Azure's published VM size pages
# (learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated).
VM_SIZES: dict[str, VmSize] = {
    # NCads A100 v4: A100 PCIe 80GB
    "Standard_NC24ads_A100_v4": VmSize("A100 PCIe", 1, 80, 24, 220),
    "Standard_NC48ads_A100_v4": VmSize("A100 PCIe", 2, 80, 48, 440),
    "Standard_NC96ads_A100_v4": VmSize("A100 PCIe", 4, 80, 96, 880),
    # ND A100 v4 (40GB) and NDm A100 v4 (80GB), SXM with InfiniBand
    "Standard_ND96asr_v4": VmSize("A100 SXM", 8, 40, 96, 900),
    "Standard_ND96amsr_A100_v4": VmSize("A100 SXM", 8, 80, 96, 1900),
    # NC H100 v5 (and the confidential NCC variant): H100 NVL 94GB
    "Standard_NC40ads_H100_v5": VmSize("H100 NVL", 1, 94, 40, 320),
    "Standard_NC80adis_H100_v5": VmSize("H100 NVL", 2, 94, 80, 640),
    "Standard_NCC40ads_H100_v5": VmSize("H100 NVL", 1, 94, 40, 320),
    # ND H100 v5 / ND H200 v5 / ND MI300X v5: 8-GPU SXM/OAM nodes
    "Standard_ND96isr_H100_v5": VmSize("H100 SXM", 8, 80, 96, 1900),
    "Standard_ND96isr_H200_v5": VmSize("H200 SXM", 8, 141, 96, 1850),
    "Standard_ND96isr_MI300X_v5": VmSize("MI300X", 8, 192, 96, 1850),
    # NCasT4_v3: T4 16GB
    "Standard_NC4as_T4_v3": VmSize("T4", 1, 16, 4, 28),
    "Standard_NC8as_T4_v3": VmSize("T4", 1, 16, 8, 56),
    "Standard_NC16as_T4_v3": VmSize("T4", 1, 16, 16, 110),
    "Standard_NC64as_T4_v3": VmSize("T4", 4, 16, 64, 440),
    # NVadsA10 v5: only the whole-GPU sizes (the smaller ones are GPU partitions, see FRACTIONAL)
    "Standard_NV36ads_A10_v5": VmSize("A10", 1, 24, 36, 440),
    "Standard_NV36adms_A10_v5": VmSize("A10", 1, 24, 36, 880),
    "Standard_NV72ads_A10_v5": VmSize("A10", 2, 24, 72, 880),
    # NCv3 and NDv2: V100
    "Standard_NC6s_v3": VmSize("V100 PCIe", 1, 16, 6, 112),
    "Standard_NC12s_v3": VmSize("V100 PCIe", 2, 16, 12, 224),
    "Standard_NC24s_v3": VmSize("V100 PCIe", 4, 16, 24, 448),
    "Standard_NC24rs_v3": VmSize("V100 PCIe", 4, 16, 24, 448),
    "Standard_ND40rs_v2": VmSize("V100 SXM", 8, 32, 40, 672),
}

# Sizes that get a slice of one GPU: an offer needs whole GPUs, so these are refused with their own reason.
FRACTIONAL = frozenset({"Standard_NV6ads_A10_v5", "Standard_NV12ads_A10_v5", "Standard_NV18ads_A10_v5"})

# Standard_N* sizes that carry no GPU (NP = FPGA): skipped quietly rather than reported as unknown.
DEFAULT_IGNORE_PREFIXES = ("Standard_NP",)

REQUIRED = ("armSkuName", "armRegionName", "type", "skuName", "productName", "retailPrice", "currencyCode")


def odata_filter(region: str | None) -> str:
    """Keep the listing to Linux GPU VM meters server-side (the API has no ``or``; all N-series start "Standard_N")."""
    parts = [
        "serviceName eq 'Virtual Machines'",
        "contains(armSkuName, 'Standard_N')",
        "contains(productName, 'Windows') eq false",
        "contains(productName, 'Cloud Services') eq false",
        "contains(meterName, 'Low Priority') eq false",
    ]
    if region:
        parts.append(f"armRegionName eq '{region}'")
    return " and ".join(parts)


def _option_sizes(raw: object) -> dict[str, VmSize]:
    if not isinstance(raw, Mapping):
        raise ConfigError("option vm_sizes must be a table of VM size -> {gpu, count, gpu_memory_gb, vcpus, memory_gb}")
    sizes: dict[str, VmSize] = {}
    for name, spec in raw.items():
        try:
            sizes[str(name)] = VmSize(
                gpu=str(spec["gpu"]),
                count=int(spec["count"]),
                gpu_memory_gb=float(spec["gpu_memory_gb"]),
                vcpus=float(spec["vcpus"]) if "vcpus" in spec else None,
                memory_gb=float(spec["memory_gb"]) if "memory_gb" in spec else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"option vm_sizes.{name}: needs gpu, count and gpu_memory_gb ({exc!r})") from None
    return sizes


def _positive_int(opts: Mapping[str, Any], name: str, default: int) -> int:
    value = opts.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"option {name} must be a whole number >= 1 (got {value!r})")
    return value


def _dropped(row: Mapping[str, Any]) -> bool:
    """Rows that never describe a Linux pay-as-you-go / spot / reserved VM price (dropped by design, not counted)."""
    product = str(row.get("productName", ""))
    sku = str(row.get("skuName", ""))
    meter = str(row.get("meterName", ""))
    return (
        "Windows" in product
        or product.endswith("Cloud Services")
        or row.get("type") == "DevTestConsumption"
        or sku.endswith("Low Priority")
        or meter.endswith("Low Priority")
    )


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


class AzureSource(Source):
    kind: ClassVar[str] = "azure"
    naming: ClassVar[str] = "azure"

    def __init__(self, ctx: SourceContext, *, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(ctx)
        self.sleep = sleep
        opts = ctx.options
        self.base_url = str(opts.get("base_url", DEFAULT_BASE_URL))
        regions = opts.get("regions", [])
        if isinstance(regions, str) or not all(isinstance(r, str) for r in regions):
            raise ConfigError("option regions must be a list of armRegionName values, e.g. ['eastus', 'westeurope']")
        self.regions: list[str] = list(regions)
        self.sizes = {**VM_SIZES, **_option_sizes(opts.get("vm_sizes", {}))}
        self.ignore_prefixes = tuple(opts.get("ignore_prefixes", DEFAULT_IGNORE_PREFIXES))
        self.max_pages = _positive_int(opts, "max_pages", 50)
        self.max_attempts = _positive_int(opts, "max_attempts", 4)

    def fetch(self) -> Snapshot:
        client = client_for(self.ctx, self.kind, DEMO_ROUTES)
        snap = Snapshot(source=self.ctx.name, naming=self.naming, taken_at=self.ctx.now(), demo=self.ctx.demo)
        best: dict[OfferKey, tuple[str, PriceObservation]] = {}  # latest effectiveStartDate wins per offer
        unknown: set[str] = set()  # sizes to name in a warning
        failures: list[str] = []
        listings: list[str | None] = [*self.regions] or [None]
        for region in listings:
            rows, failure = self._listing(client, region)
            if failure:
                failures.append(failure)
            for row in rows:
                for started, obs in self._parse_row(row, snap.rejected, unknown):
                    kept = best.get(obs.key)
                    if kept is None or started > kept[0]:
                        best[obs.key] = (started, obs)
        snap.observations = [obs for _, obs in best.values()]
        if not snap.observations:  # an empty complete snapshot would withdraw every Azure offer
            where = ", ".join(self.regions) or "any region"
            reasons = f" (refused: {dict(snap.rejected)})" if snap.rejected else ""
            raise SourceError(
                failures[0]
                if failures
                else f"Azure retail prices: no usable GPU VM price for {where}{reasons}; check option regions"
            )
        if failures:
            snap.complete = False
            snap.warnings.extend(f"listing incomplete, offers not withdrawn: {f}" for f in failures)
        if unknown:
            names = ", ".join(sorted(unknown)[:10])
            snap.warnings.append(f"VM sizes not in the GPU table (add them to option vm_sizes): {names}")
        return snap

    def _listing(self, client: httpx.Client, region: str | None) -> tuple[list[Any], str | None]:
        """All rows of one listing, and why it stopped early (None when it reached the last page)."""
        url = self.base_url
        params: dict[str, str] | None = {"api-version": API_VERSION, "$filter": odata_filter(region)}
        rows: list[Any] = []
        for page in range(1, self.max_pages + 1):
            what = f"Azure retail prices ({region or 'all regions'}) page {page}"
            try:
                body = get_json(
                    self.ctx, client, url, what=what, params=params, sleep=self.sleep, max_attempts=self.max_attempts
                )
                items, next_link = _page(body, what)
            except SourceError as exc:
                return rows, str(exc)
            rows.extend(items)
            if not next_link:
                return rows, None
            url, params = next_link, None  # NextPageLink carries the filter and $skip
        return rows, f"Azure retail prices ({region or 'all regions'}): over {self.max_pages} pages; raise max_pages"

    def _parse_row(
        self, row: object, rejected: Counter[str], unknown: set[str]
    ) -> Iterator[tuple[str, PriceObservation]]:
        if not isinstance(row, Mapping):
            rejected["malformed row"] += 1
            return
        missing = [f for f in REQUIRED if f not in row]
        if missing:
            rejected[f"missing field {missing[0]}"] += 1
            return
        if _dropped(row):
            return
        size_name = str(row["armSkuName"])
        if size_name.startswith(self.ignore_prefixes):
            return
        size = self.sizes.get(size_name)
        if size is None:
            if size_name in FRACTIONAL:
                rejected["fractional GPU VM size"] += 1
            else:
                rejected["unknown VM size"] += 1
                unknown.add(size_name)
            return
        unit = row.get("unitOfMeasure", "1 Hour")
        if unit != "1 Hour":
            rejected["unit of measure is not '1 Hour'"] += 1
            return
        price = _decimal(row["retailPrice"])
        if price is None:
            rejected["price is not a number"] += 1
            return
        started = str(row.get("effectiveStartDate", ""))
        region = str(row["armRegionName"])
        attrs = {"sku_name": row["skuName"], "product_name": row["productName"], "effective_start": started}

        def offer(
            purchase: Purchase,
            hourly: Decimal,
            term: str = "",
            payment: str = "",
            plan: str = "",
            extra: Mapping[str, Any] | None = None,
        ) -> tuple[str, PriceObservation]:
            key = OfferKey("azure", region, size_name, purchase.value, term=term, payment=payment, plan=plan)
            return started, PriceObservation(
                key=key,
                hourly_usd=hourly,
                gpu_name=size.gpu,
                gpu_count=size.count,
                gpu_memory_gb=size.gpu_memory_gb,
                vcpus=size.vcpus,
                memory_gb=size.memory_gb,
                currency=str(row["currencyCode"]),
                availability=Availability.UNKNOWN,
                attrs={**attrs, **(extra or {})},
            )

        kind = row["type"]
        if kind == "Reservation":
            term = TERMS.get(str(row.get("reservationTerm")))
            if term is None:
                rejected["unknown reservation term"] += 1
                return
            # retailPrice is the whole term's price, paid up front: amortise it over the term's hours.
            hourly = (price / TERM_HOURS[term]).quantize(HOURLY_PLACES, ROUND_HALF_EVEN)
            yield offer(
                Purchase.RESERVED, hourly, term, Payment.ALL_UPFRONT.value, extra={"term_total_usd": str(price)}
            )
        elif kind == "Consumption":
            if str(row["skuName"]).endswith("Spot") or str(row.get("meterName", "")).endswith("Spot"):
                yield offer(Purchase.SPOT, price)
                return
            yield offer(Purchase.ON_DEMAND, price)
            yield from self._savings_plans(row.get("savingsPlan", []), rejected, offer)
        else:
            rejected["unknown price type"] += 1

    @staticmethod
    def _savings_plans(
        plans: object, rejected: Counter[str], offer: Callable[..., tuple[str, PriceObservation]]
    ) -> Iterator[tuple[str, PriceObservation]]:
        if not isinstance(plans, list):
            rejected["malformed savingsPlan"] += 1
            return
        for plan in plans:
            term = TERMS.get(str(plan.get("term"))) if isinstance(plan, Mapping) else None
            hourly = _decimal(plan.get("retailPrice")) if isinstance(plan, Mapping) else None
            if term is None or hourly is None:
                rejected["malformed savingsPlan"] += 1
                continue
            yield offer(Purchase.SAVINGS_PLAN, hourly, term, plan="compute")  # already an hourly rate


def _page(body: object, what: str) -> tuple[list[Any], str | None]:
    if not isinstance(body, Mapping) or not isinstance(body.get("Items"), list):
        raise SourceError(f"{what}: no 'Items' list in the response (has the API shape changed?)")
    next_link = body.get("NextPageLink")
    if next_link is not None and not isinstance(next_link, str):
        raise SourceError(f"{what}: NextPageLink is not a URL ({next_link!r})")
    return body["Items"], next_link


# Demo mode: the first request (any filter) is page 1; its NextPageLink names page 2 by $skip.
DEMO_ROUTES = {
    "/api/retail/prices": "prices_page1.json",
    "/api/retail/prices?$skip=1000": "prices_page2.json",
}
