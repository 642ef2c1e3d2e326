"""Turn AWS Price List items (``pricing.get_products``) into on-demand and reserved observations.

Each ``PriceList`` element is a JSON *string*. Reserved terms carry an upfront fee (unit "Quantity") and a
recurring hourly part (unit "Hrs"); the fee is amortised over the term so every observation is an effective
USD per instance-hour.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from broker.domain import TERM_HOURS, OfferKey, Payment

PROVIDER = "aws"
LEASE_TERMS = {"1yr": "1y", "3yr": "3y"}
PURCHASE_OPTIONS = {
    "No Upfront": Payment.NO_UPFRONT,
    "Partial Upfront": Payment.PARTIAL_UPFRONT,
    "All Upfront": Payment.ALL_UPFRONT,
}
OFFERING_CLASSES = {"standard", "convertible"}


@dataclass(frozen=True, slots=True)
class PricedItem:
    """One instance type in one region with all its list prices (before GPU specs are attached)."""

    region: str
    instance_type: str
    gpu_count: int
    vcpus: float | None
    memory_gb: float | None
    sku: str
    prices: list[tuple[OfferKey, Decimal, dict[str, Any]]] = field(default_factory=list)


class ItemError(ValueError):
    """A price item that cannot be used; ``reason`` is the rejected-row counter key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


def _decimal(value: Any) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ItemError("bad_price", f"not a number: {value!r}") from None
    if not number.is_finite():
        raise ItemError("bad_price", f"not finite: {value!r}")
    return number


def _usd(dimension: dict[str, Any]) -> Decimal:
    prices = dimension.get("pricePerUnit")
    if not isinstance(prices, dict) or not prices:
        raise ItemError("missing_field", "pricePerUnit")
    if "USD" not in prices:
        raise ItemError("non_usd", f"currencies {sorted(prices)}")
    return _decimal(prices["USD"])


def _number(text: str | None) -> float | None:
    """ "2048 GiB" -> 2048.0; "NA" / missing -> None."""
    if not text:
        return None
    head = text.split()[0].replace(",", "")
    try:
        return float(head)
    except ValueError:
        return None


def _dimensions(term: dict[str, Any]) -> list[dict[str, Any]]:
    dims = term.get("priceDimensions")
    if not isinstance(dims, dict) or not dims:
        raise ItemError("missing_field", "priceDimensions")
    return [d for d in dims.values() if isinstance(d, dict)]


def _on_demand(region: str, itype: str, terms: dict[str, Any]) -> list[tuple[OfferKey, Decimal, dict[str, Any]]]:
    out = []
    for term in terms.values():
        hourly = [d for d in _dimensions(term) if d.get("unit") == "Hrs"]
        if len(hourly) != 1:
            raise ItemError("bad_term", f"on-demand term with {len(hourly)} hourly dimensions")
        key = OfferKey(PROVIDER, region, itype, "on_demand")
        out.append((key, _usd(hourly[0]), {"offer_term_code": term.get("offerTermCode", "")}))
    return out


def _reserved(region: str, itype: str, terms: dict[str, Any]) -> list[tuple[OfferKey, Decimal, dict[str, Any]]]:
    out = []
    for term in terms.values():
        attrs = term.get("termAttributes") or {}
        lease = LEASE_TERMS.get(attrs.get("LeaseContractLength", ""))
        payment = PURCHASE_OPTIONS.get(attrs.get("PurchaseOption", ""))
        plan = str(attrs.get("OfferingClass", ""))
        if lease is None or payment is None or plan not in OFFERING_CLASSES:
            raise ItemError("bad_term", f"reserved term attributes {attrs!r}")
        hourly, upfront = Decimal(0), Decimal(0)
        for dim in _dimensions(term):
            if dim.get("unit") == "Hrs":
                hourly += _usd(dim)
            elif dim.get("unit") == "Quantity":
                upfront += _usd(dim)
        effective = hourly + upfront / TERM_HOURS[lease]
        key = OfferKey(PROVIDER, region, itype, "reserved", term=lease, payment=payment.value, plan=plan)
        extra = {
            "upfront_usd": str(upfront),
            "recurring_hourly_usd": str(hourly),
            "offer_term_code": term.get("offerTermCode", ""),
        }
        out.append((key, effective, extra))
    return out


def parse_item(raw: str | dict[str, Any], region: str) -> PricedItem:
    """Decode one PriceList element; raises :class:`ItemError` naming why it cannot be used."""
    if isinstance(raw, str):
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ItemError("malformed_json", str(exc)) from None
    else:
        item = raw
    if not isinstance(item, dict):
        raise ItemError("malformed_json", "item is not an object")
    try:
        product = item["product"]
        attrs = product["attributes"]
        itype = attrs["instanceType"]
        terms = item["terms"]
        sku = str(product.get("sku", ""))
        item_region = attrs.get("regionCode") or region
        gpu_count = int(attrs.get("gpu") or 0)
        prices = _on_demand(item_region, itype, terms.get("OnDemand") or {})
        prices += _reserved(item_region, itype, terms.get("Reserved") or {})
    except (KeyError, TypeError, AttributeError) as exc:
        raise ItemError("missing_field", f"{type(exc).__name__}: {exc}") from None
    except ValueError as exc:
        if isinstance(exc, ItemError):
            raise
        raise ItemError("bad_field", str(exc)) from None
    return PricedItem(
        region=item_region,
        instance_type=itype,
        gpu_count=gpu_count,
        vcpus=_number(attrs.get("vcpu")),
        memory_gb=_number(attrs.get("memory")),
        sku=sku,
        prices=prices,
    )


def parse_page(items: list[Any], region: str, families: frozenset[str], rejected: Counter[str]) -> list[PricedItem]:
    """Parse one page: keep GPU types (a ``gpu`` count, or a configured family); count refused rows."""
    kept = []
    for raw in items:
        try:
            priced = parse_item(raw, region)
        except ItemError as exc:
            rejected[exc.reason] += 1
            continue
        if priced.gpu_count <= 0 and family_of(priced.instance_type) not in families:
            continue  # a non-GPU type the filter let through (ML ASICs, say): not an offer of ours
        kept.append(priced)
    return kept


def family_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]
