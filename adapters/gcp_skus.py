"""Classify Compute Engine SKUs (Cloud Billing Catalog) into the price components of GPU machines.

A SKU description names one resource in one pricing mode, e.g. "Spot Preemptible A3 Instance Core running in
Americas", "Commitment v1: Nvidia Tesla A100 GPU in Americas for 1 Year", "SSD backed Local Storage". The regions
a SKU applies to come from ``serviceRegions``, never from the description's geography text.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

USAGE = {"OnDemand": "on_demand", "Preemptible": "spot", "Commit1Yr": "commit_1y", "Commit3Yr": "commit_3y"}
HOURS_PER_MONTH = Decimal(730)
# Capacity types we do not list: reservation-only, DWS calendar / flex, sole tenancy, custom shapes.
SKIPPED = re.compile(r"^reserved |dws |calendar mode|defined duration|sole tenancy|custom|extended|premium", re.I)

_HEAD = re.compile(r"^(?:commitment v1:\s*|spot preemptible\s+|preemptible\s+)+", re.I)
_TAIL = re.compile(
    r"\s+(?:attached to (?:spot )?preemptible vms\s*)?(?:running in .*|in .+ for \d+ years?)$|"
    r"\s+attached to (?:spot )?preemptible vms$",
    re.I,
)
_CORE = re.compile(r"^(?P<fam>[A-Za-z0-9]+)(?: predefined)?(?: amd| intel)? instance core$|^(?P<plain>cpu)$", re.I)
_RAM = re.compile(r"^(?P<fam>[A-Za-z0-9]+)(?: predefined)?(?: amd| intel)? instance ram$|^(?P<plain>ram)$", re.I)
_COMMIT_CPU = re.compile(r"^(?P<fam>[A-Za-z0-9]+) (?P<what>cpu|ram)$", re.I)
_SLICE = re.compile(r"^(?P<fam>A\d[A-Za-z]*) nvidia (?P<gpu>\S+) \(1 gpu slice\)$", re.I)
_GPU = re.compile(r"^(?:nvidia\s+)?(?:tesla\s+)?(?P<gpu>.+?)\s+gpu$", re.I)
_SSD = re.compile(r"^(?:ssd backed local storage|local ssd)$", re.I)

# GPU part of a description -> accelerator type name (the Compute API's spelling, our naming "gcp").
GPU_NAMES = {
    "a100": "nvidia-tesla-a100",
    "a100 80gb": "nvidia-a100-80gb",
    "h100 80gb": "nvidia-h100-80gb",
    "h100": "nvidia-h100-80gb",
    "h100 80gb mega": "nvidia-h100-mega-80gb",
    "h100 mega 80gb": "nvidia-h100-mega-80gb",
    "h100 80gb plus": "nvidia-h100-mega-80gb",
    "h200 141gb": "nvidia-h200-141gb",
    "l4": "nvidia-l4",
    "t4": "nvidia-tesla-t4",
    "v100": "nvidia-tesla-v100",
    "p100": "nvidia-tesla-p100",
    "p4": "nvidia-tesla-p4",
    "b200": "nvidia-b200",
}


@dataclass(frozen=True, slots=True)
class Component:
    kind: str  # "cpu" | "ram" | "gpu" | "slice" | "ssd"
    name: str  # machine family ("A3", "N1") or accelerator type ("nvidia-h100-80gb")
    usage: str  # "on_demand" | "spot" | "commit_1y" | "commit_3y"


# (component, region) -> USD per unit-hour (per vCPU, per GiB of RAM or SSD, per GPU / GPU slice)
PriceIndex = dict[tuple[Component, str], Decimal]


def classify(description: str, usage: str) -> tuple[str, str] | None:
    """(kind, name) for a description, or None when it is not a GPU-machine component."""
    core = _TAIL.sub("", _HEAD.sub("", description.strip())).strip()
    if m := _SLICE.match(core):
        return "slice", f"{m['fam'].upper()}:{GPU_NAMES.get(m['gpu'].lower(), m['gpu'].lower())}"
    if _SSD.match(core):
        return "ssd", "local"
    if m := _CORE.match(core):
        return "cpu", "N1" if m["plain"] else m["fam"].upper()
    if m := _RAM.match(core):
        return "ram", "N1" if m["plain"] else m["fam"].upper()
    if usage.startswith("commit") and (m := _COMMIT_CPU.match(core)):
        return m["what"].lower(), m["fam"].upper()
    if m := _GPU.match(core):
        name = GPU_NAMES.get(" ".join(m["gpu"].lower().split()))
        return ("gpu", name) if name else None
    return None


def _unit_price(sku: Any) -> tuple[Decimal, str, str]:
    """(price of the first tier, its currency, usage unit); raises LookupError when absent."""
    info = sku.pricing_info[0]
    expr = info.pricing_expression
    rates = sorted(expr.tiered_rates, key=lambda r: r.start_usage_amount)
    if not rates:
        raise LookupError("no tiered rates")
    price = rates[0].unit_price
    value = Decimal(int(price.units)) + Decimal(int(price.nanos)) / Decimal(1_000_000_000)
    return value, str(price.currency_code), str(expr.usage_unit)


def _hourly(value: Decimal, unit: str) -> Decimal | None:
    if unit in ("h", "GiBy.h"):
        return value
    if unit == "GiBy.mo":  # local SSD is priced per GiB-month
        return value / HOURS_PER_MONTH
    return None


def index_skus(skus: Any, prices: PriceIndex, rejected: Counter[str], regions: frozenset[str] | None) -> int:
    """Add one page of SKUs to ``prices``; returns how many SKUs were used. Duplicates keep the lower price."""
    used = 0
    for sku in skus:
        usage = USAGE.get(str(sku.category.usage_type))
        if usage is None or SKIPPED.search(sku.description or ""):
            continue
        kind_name = classify(sku.description, usage)
        if kind_name is None:
            continue
        try:
            value, currency, unit = _unit_price(sku)
        except (LookupError, AttributeError, ValueError):
            rejected["missing_price"] += 1
            continue
        if currency != "USD":
            rejected["non_usd"] += 1
            continue
        if value < 0:
            rejected["negative_price"] += 1
            continue
        hourly = _hourly(value, unit)
        if hourly is None:
            rejected["unknown_unit"] += 1
            continue
        component = Component(kind_name[0], kind_name[1], usage)
        for region in sku.service_regions:
            if regions is not None and region not in regions:
                continue
            slot = (component, str(region))
            if slot not in prices or hourly < prices[slot]:
                prices[slot] = hourly
        used += 1
    return used
