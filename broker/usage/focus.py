"""FOCUS 1.2 (FinOps Open Cost and Usage Specification) usage rows: export of usage records and import of a bill.

Mapping (shared/reference/cost-models.md §8): on-demand -> PricingCategory "Standard", spot -> "Dynamic",
committed purchases -> "Committed". Prices are per instance-hour, so PricingUnit/ConsumedUnit are "Hours" of the
instance; GPU facts travel in ``x_`` columns. The broker does not model commitment purchase rows, so on an
exported row BilledCost = EffectiveCost = ContractedCost = what the run cost.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from broker.domain import Purchase
from broker.usage.models import UsageRecord
from broker.usage.prices import Reference
from broker.usage.service import purchase_class

COLUMNS = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodStart",
    "BillingPeriodEnd", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodStart",
    "ChargePeriodEnd", "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountStatus",
    "CommitmentDiscountType", "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice",
    "EffectiveCost", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName",
    "ResourceType", "ServiceCategory", "ServiceName", "SkuId", "Tags",
    "x_GpuType", "x_GpuCount", "x_GpuHours", "x_InterruptionCount", "x_Predictions", "x_Purchase", "x_ReportId",
    "x_PlacementId", "x_ListCostBasis",
)  # fmt: skip
PRICING_CATEGORY = {"spot": "Dynamic", "on_demand": "Standard", "committed": "Committed"}
COMMITMENT_CATEGORY = {Purchase.SAVINGS_PLAN.value: "Spend"}  # the rest commit to usage (instances, GPUs)


def _money(x: Decimal) -> str:
    return format(x.quantize(Decimal("1e-8")).normalize(), "f")


def _ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _month(t: datetime) -> tuple[datetime, datetime]:
    start = t.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def export_row(r: UsageRecord, ref: Reference | None) -> dict[str, str]:
    cls = purchase_class(r.purchase)
    gpus = r.gpus_per_node or 1
    instance_hours = r.gpu_hours / gpus
    unit_price = r.cost_usd / instance_hours if instance_hours else Decimal(0)
    list_unit = ref.gpu_hourly_usd * gpus if ref is not None else unit_price
    period = _month(r.started_at)
    labels = {str(k): str(v) for k, v in (r.labels or {}).items()}
    committed = cls == "committed"
    return {
        "BilledCost": _money(r.cost_usd),
        "BillingAccountId": labels.get("billing_account", "broker"),
        "BillingAccountName": labels.get("billing_account", ""),
        "BillingCurrency": "USD",
        "BillingPeriodStart": _ts(period[0]),
        "BillingPeriodEnd": _ts(period[1]),
        "ChargeCategory": "Usage",
        "ChargeClass": "",
        "ChargeDescription": f"{r.gpu_model} on {r.provider} {r.instance_type} ({r.purchase})",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodStart": _ts(r.started_at),
        "ChargePeriodEnd": _ts(r.ended_at),
        "CommitmentDiscountCategory": COMMITMENT_CATEGORY.get(r.purchase, "Usage") if committed else "",
        "CommitmentDiscountId": f"{r.provider}:{r.region}:{r.purchase}:{r.instance_type}" if committed else "",
        "CommitmentDiscountStatus": "Used" if committed else "",
        "CommitmentDiscountType": r.purchase if committed else "",
        "ConsumedQuantity": _money(instance_hours),
        "ConsumedUnit": "Hours",
        "ContractedCost": _money(r.cost_usd),
        "ContractedUnitPrice": _money(unit_price),
        "EffectiveCost": _money(r.cost_usd),
        "InvoiceIssuerName": r.provider,
        "ListCost": _money(list_unit * instance_hours),
        "ListUnitPrice": _money(list_unit),
        "PricingCategory": PRICING_CATEGORY[cls],
        "PricingQuantity": _money(instance_hours),
        "PricingUnit": "Hours",
        "ProviderName": r.provider,
        "PublisherName": r.provider,
        "RegionId": r.region,
        "RegionName": r.region,
        "ResourceId": r.placement_id or r.report_id,
        "ResourceName": labels.get("name", ""),
        "ResourceType": r.instance_type,
        "ServiceCategory": "Compute",
        "ServiceName": "GPU compute",
        "SkuId": r.instance_type,
        "Tags": json.dumps(labels, sort_keys=True),
        "x_GpuType": r.gpu_model,
        "x_GpuCount": str(gpus),
        "x_GpuHours": _money(r.gpu_hours),
        "x_InterruptionCount": str(r.interruptions),
        "x_Predictions": "" if r.predictions is None else str(r.predictions),
        "x_Purchase": r.purchase,
        "x_ReportId": r.report_id,
        "x_PlacementId": r.placement_id or "",
        "x_ListCostBasis": ref.basis if ref is not None else "unknown (no on-demand price in history)",
    }


def write_csv(rows: Iterable[Mapping[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# ---------------------------------------------------------------- import


@dataclass(slots=True)
class ImportRow:
    line: int
    fields: dict[str, Any]  # UsageRecord column values


@dataclass(slots=True)
class ParsedBill:
    rows: list[ImportRow] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong)
    skipped: dict[str, list[int]] = field(default_factory=dict)  # reason -> line numbers


REQUIRED = ("ChargeCategory", "ChargePeriodStart", "ChargePeriodEnd", "ProviderName")
FROM_CATEGORY = {"Standard": Purchase.ON_DEMAND.value, "Dynamic": Purchase.SPOT.value}
GpuLookup = Callable[[str, str], tuple[str, int] | None]  # (provider, instance type) -> (GPU model, GPUs/instance)
GpuResolve = Callable[[str], str | None]  # x_GpuType -> catalog model id


class RowError(ValueError):
    pass


def _time(row: Mapping[str, str], col: str) -> datetime:
    raw = (row.get(col) or "").strip()
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise RowError(f"{col}: not an ISO 8601 date-time: {raw!r}") from None
    if t.tzinfo is None:
        raise RowError(f"{col}: {raw!r} has no timezone (FOCUS date-times are UTC, e.g. 2026-11-01T00:00:00Z)")
    return t.astimezone(UTC)


def _decimal(row: Mapping[str, str], col: str, *, required: bool = False) -> Decimal | None:
    raw = (row.get(col) or "").strip()
    if not raw:
        if required:
            raise RowError(f"{col}: missing")
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise RowError(f"{col}: not a number: {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise RowError(f"{col}: must be a finite number >= 0, got {raw!r}")
    return value


def _int(row: Mapping[str, str], col: str) -> int | None:
    value = _decimal(row, col)
    if value is None:
        return None
    if value != value.to_integral_value():
        raise RowError(f"{col}: must be a whole number, got {row.get(col)!r}")
    return int(value)


def _labels(row: Mapping[str, str]) -> dict[str, str]:
    raw = (row.get("Tags") or "").strip()
    if not raw:
        return {}
    try:
        tags = json.loads(raw)
    except json.JSONDecodeError:
        raise RowError("Tags: not a JSON object") from None
    if not isinstance(tags, dict):
        raise RowError("Tags: not a JSON object")
    return {str(k): str(v) for k, v in tags.items()}


def _purchase(row: Mapping[str, str]) -> str:
    explicit = (row.get("x_Purchase") or "").strip()
    if explicit:
        if explicit not in {p.value for p in Purchase}:
            raise RowError(f"x_Purchase: unknown purchase {explicit!r}")
        return explicit
    category = (row.get("PricingCategory") or "").strip()
    if category == "Committed":
        kind = (row.get("CommitmentDiscountType") or "").strip().lower().replace(" ", "_")
        return kind if kind in {p.value for p in Purchase} else Purchase.COMMITTED_USE.value
    return FROM_CATEGORY.get(category, Purchase.ON_DEMAND.value)


def _parse_row(row: Mapping[str, str], lookup: GpuLookup, resolve: GpuResolve) -> dict[str, Any] | str:
    """The record's columns, or a reason to skip a row that is valid FOCUS but not GPU usage."""
    category = (row.get("ChargeCategory") or "").strip()
    if category not in {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}:
        raise RowError(f"ChargeCategory: {category!r} is not a FOCUS charge category")
    if category != "Usage":
        return f"ChargeCategory {category} (only Usage rows are usage)"
    start, end = _time(row, "ChargePeriodStart"), _time(row, "ChargePeriodEnd")
    if end < start:
        raise RowError("ChargePeriodEnd is before ChargePeriodStart")
    provider = (row.get("ProviderName") or "").strip().lower()
    if not provider:
        raise RowError("ProviderName: missing")
    instance_type = (row.get("ResourceType") or row.get("SkuId") or "").strip()
    gpu_type = (row.get("x_GpuType") or "").strip()
    gpu_count = _int(row, "x_GpuCount")
    if gpu_type:
        gpu_model = resolve(gpu_type)
        if gpu_model is None:
            raise RowError(f"x_GpuType: {gpu_type!r} is not a GPU model the catalog knows")
    else:
        seen = lookup(provider, instance_type) if instance_type else None
        if seen is None:
            return "not GPU usage (no x_GpuType, and the instance type is not a GPU offer the broker has seen)"
        gpu_model = seen[0]
        gpu_count = gpu_count or seen[1]
    if not gpu_count:
        raise RowError("x_GpuCount: missing or 0 (GPUs per instance)")
    gpu_hours = _decimal(row, "x_GpuHours")
    if gpu_hours is None:
        unit = (row.get("ConsumedUnit") or "").strip().lower()
        quantity = _decimal(row, "ConsumedQuantity", required=True)
        if unit not in {"hours", "hour", "hrs", "h"}:
            raise RowError(f"ConsumedUnit: {row.get('ConsumedUnit')!r}: only instance Hours can become GPU-hours")
        gpu_hours = (quantity or Decimal(0)) * gpu_count
    cost = _decimal(row, "EffectiveCost")
    billed = _decimal(row, "BilledCost")
    if cost is None and billed is None:
        raise RowError("EffectiveCost and BilledCost: both missing")
    return {
        "started_at": start,
        "ended_at": end,
        "gpu_hours": gpu_hours,
        "interruptions": _int(row, "x_InterruptionCount") or 0,
        "predictions": _int(row, "x_Predictions"),
        "billed_usd": billed,
        "cost_usd": cost if cost is not None else billed,
        "cost_estimated": False,
        "provider": provider,
        "region": (row.get("RegionId") or "").strip(),
        "instance_type": instance_type,
        "purchase": _purchase(row),
        "gpu_model": gpu_model,
        "gpus_per_node": gpu_count,
        "labels": _labels(row),
        "report_id": (row.get("x_ReportId") or "").strip(),
    }


def parse(text: str, lookup: GpuLookup, resolve: GpuResolve) -> ParsedBill:
    """Validate every row; line numbers count the header as line 1 (a quoted newline spans lines)."""
    bill = ParsedBill()
    reader = csv.DictReader(io.StringIO(text))
    header: Sequence[str] = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        bill.errors.append((1, f"header: missing FOCUS column(s) {', '.join(missing)}"))
        return bill
    line = reader.line_num + 1
    for row in reader:
        try:
            parsed = _parse_row(row, lookup, resolve)
        except RowError as exc:
            bill.errors.append((line, str(exc)))
        else:
            if isinstance(parsed, str):
                bill.skipped.setdefault(parsed, []).append(line)
            else:
                bill.rows.append(ImportRow(line, parsed))
        line = reader.line_num + 1
    return bill
