"""Spot prices, the Spot Instance Advisor bands and Savings Plans rates for the AWS source.

Pure parsing: the calls themselves live in ``adapters.aws``. Every function takes the decoded response and
returns observations' raw material, counting the rows it refuses.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from broker.domain import OfferKey, Payment

PROVIDER = "aws"
HOURS_PER_MONTH = 730.0
SP_PLANS = {"Compute": "compute", "EC2Instance": "ec2_instance"}
SP_DURATIONS = {31536000: "1y", 94608000: "3y"}
SP_PAYMENTS = {
    "No Upfront": Payment.NO_UPFRONT,
    "Partial Upfront": Payment.PARTIAL_UPFRONT,
    "All Upfront": Payment.ALL_UPFRONT,
}


@dataclass(frozen=True, slots=True)
class SpotPoint:
    key: OfferKey
    at: datetime
    price: Decimal


@dataclass(frozen=True, slots=True)
class Band:
    label: str  # "<5%" ...
    max_pct: float  # the band's upper bound, in percent
    savings_pct: int | None

    def hourly_rate(self) -> float | None:
        """A conservative per-hour interruption rate: the band's upper bound read as the chance of being
        reclaimed within a month of running (cost-models §4), so lambda = -ln(1 - f) / 730 h.
        None for the open-ended top band, where no finite rate follows."""
        f = self.max_pct / 100.0
        if not 0.0 < f < 1.0:
            return None
        return -math.log(1.0 - f) / HOURS_PER_MONTH


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def spot_points(rows: list[Any], region: str, rejected: Counter[str]) -> list[SpotPoint]:
    """Every usable row of a ``describe_spot_price_history`` page (one zone per row)."""
    out = []
    for row in rows:
        try:
            zone = str(row["AvailabilityZone"])
            key = OfferKey(PROVIDER, region, str(row["InstanceType"]), "spot", zone=zone)
            price = Decimal(str(row["SpotPrice"]))
            at = _aware(row["Timestamp"])
        except (KeyError, TypeError):
            rejected["spot_missing_field"] += 1
            continue
        except (InvalidOperation, ValueError):
            rejected["spot_bad_value"] += 1
            continue
        if not price.is_finite():
            rejected["spot_bad_value"] += 1
            continue
        out.append(SpotPoint(key, at, price))
    return out


def current_spot(points: list[SpotPoint]) -> dict[OfferKey, SpotPoint]:
    """The latest price per (type, zone): the history call returns several points per zone."""
    latest: dict[OfferKey, SpotPoint] = {}
    for point in points:
        seen = latest.get(point.key)
        if seen is None or point.at > seen.at:
            latest[point.key] = point
    return latest


def advisor_bands(data: Any, os_name: str = "Linux") -> dict[tuple[str, str], Band]:
    """(region, instance type) -> interruption band, from spot-advisor-data.json. The band bounds are read
    from the feed's own ``ranges`` rather than hard-coded."""
    if not isinstance(data, dict):
        raise ValueError("spot advisor data is not an object")
    ranges = {int(r["index"]): (str(r["label"]), float(r["max"])) for r in data["ranges"]}
    bands: dict[tuple[str, str], Band] = {}
    for region, by_os in (data.get("spot_advisor") or {}).items():
        for itype, entry in ((by_os or {}).get(os_name) or {}).items():
            band = ranges.get(int(entry.get("r", -1)))
            if band is None:
                continue
            savings = entry.get("s")
            bands[(region, itype)] = Band(band[0], band[1], int(savings) if savings is not None else None)
    return bands


@dataclass(frozen=True, slots=True)
class SavingsRate:
    key: OfferKey
    rate: Decimal
    attrs: dict[str, Any]


def _props(result: dict[str, Any]) -> dict[str, str]:
    return {str(p.get("name")): str(p.get("value")) for p in result.get("properties") or [] if isinstance(p, dict)}


def savings_rates(results: list[Any], rejected: Counter[str]) -> list[SavingsRate]:
    """Savings Plans offering rates for shared-tenancy Linux box usage; the rate is already an effective
    hourly price (upfront payment changes the rate, not what we add to it)."""
    out = []
    for res in results:
        try:
            offering = res["savingsPlanOffering"]
            props = _props(res)
            plan = SP_PLANS.get(str(offering["planType"]))
            term = SP_DURATIONS.get(int(offering["durationSeconds"]))
            payment = SP_PAYMENTS.get(str(offering["paymentOption"]))
            usage = str(res.get("usageType", ""))
            if plan is None or term is None or payment is None:
                rejected["sp_unknown_offering"] += 1
                continue
            if "BoxUsage" not in usage or props.get("tenancy", "shared").lower() != "shared":
                continue  # dedicated / host usage: not the offer we list
            if str(res.get("unit", "Hrs")) != "Hrs":
                rejected["sp_unknown_unit"] += 1
                continue
            if str(offering.get("currency", "USD")) != "USD":
                rejected["non_usd"] += 1
                continue
            region, itype = props["region"], props["instanceType"]
            rate = Decimal(str(res["rate"]))
        except (KeyError, TypeError, ValueError, InvalidOperation):
            rejected["sp_missing_field"] += 1
            continue
        if not rate.is_finite():
            rejected["sp_missing_field"] += 1
            continue
        key = OfferKey(PROVIDER, region, itype, "savings_plan", term=term, payment=payment.value, plan=plan)
        attrs = {"offering_id": str(offering.get("offeringId", "")), "usage_type": usage}
        out.append(SavingsRate(key, rate, attrs))
    return out
