"""The history query: parsed and checked once, shared by ``GET /v1/prices/history`` and ``broker history``.

Every rejection is a :class:`BadQuery` naming the parameter and saying how to fix it (the API answers 400).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from broker.domain import Purchase
from broker.gpus import GpuCatalog

AGGS = {
    "min": "lowest price in force at any time during the bucket",
    "max": "highest price in force at any time during the bucket",
    "avg": "time-weighted mean of the prices in force during the bucket (each offer's time counts)",
    "last": "price in force at the end of the bucket (the lowest of the group's offers)",
}
GROUPS = ("offer", "provider", "gpu_model", "purchase", "region")
UNITS = {"gpu_hour": "USD per GPU-hour", "instance_hour": "USD per instance-hour"}
STEP_UNITS = {"m": 60, "h": 3600, "d": 86400}
MAX_POINTS = 5000  # per series
MAX_OFFER_SERIES = 1000  # group_by=offer: one series per offer
DEFAULT_RANGE = timedelta(days=7)
_STEP = re.compile(r"^(\d+)(m|h|d)$")


class BadQuery(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    start: datetime  # aligned down to a multiple of the step (UTC)
    end: datetime
    step_s: int | None  # None: raw (every price change)
    step: str
    agg: str = "min"
    group_by: tuple[str, ...] = ("provider",)
    unit: str = "gpu_hour"
    gpu_models: tuple[str, ...] | None = None  # catalog ids; None: any
    gpu: str | None = None  # as asked
    purchase: str | None = None
    provider: str | None = None
    region: str | None = None
    instance_type: str | None = None
    offer_id: int | None = None
    warnings: list[str] = field(default_factory=list)


def parse_time(param: str, value: str | datetime) -> datetime:
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise BadQuery(param, f"{value!r} is not an ISO 8601 time; write e.g. 2026-11-01T00:00:00Z") from None
    else:
        parsed = value
    if parsed.tzinfo is None:
        raise BadQuery(param, f"{value!s} has no time zone; add one, e.g. {parsed.isoformat()}Z")
    return parsed.astimezone(UTC)


def parse_step(value: str) -> int | None:
    text = value.strip().lower()
    if text == "raw":
        return None
    m = _STEP.match(text)
    if not m or int(m.group(1)) == 0:
        raise BadQuery("step", f"{value!r} is not a step; use a number and m, h or d (15m, 1h, 1d) or raw")
    return int(m.group(1)) * STEP_UNITS[m.group(2)]


def _smallest_step(span_s: float) -> str:
    need = span_s / MAX_POINTS
    for s in ("1m", "5m", "15m", "30m", "1h", "2h", "3h", "6h", "12h", "1d", "2d", "7d", "30d"):
        if (parse_step(s) or 0) >= need:
            return s
    return f"{int(need // 86400) + 1}d"


def build_query(
    catalog: GpuCatalog,
    *,
    now: datetime,
    gpu: str | None = None,
    purchase: str | None = None,
    provider: str | None = None,
    region: str | None = None,
    instance_type: str | None = None,
    offer_id: int | None = None,
    from_: str | datetime | None = None,
    to: str | datetime | None = None,
    step: str = "1h",
    agg: str = "min",
    group_by: str = "provider",
    unit: str = "gpu_hour",
) -> HistoryQuery:
    step_s = parse_step(step)
    if agg not in AGGS:
        raise BadQuery("agg", f"{agg!r} is not an aggregate; use one of {', '.join(AGGS)}")
    if unit not in UNITS:
        raise BadQuery("unit", f"{unit!r} is not a unit; use gpu_hour (default) or instance_hour")
    groups = tuple(g.strip() for g in group_by.split(",") if g.strip())
    bad = [g for g in groups if g not in GROUPS]
    if bad or not groups:
        raise BadQuery("group_by", f"{group_by!r}: group by one or more (comma-separated) of {', '.join(GROUPS)}")
    if purchase is not None and purchase not in {p.value for p in Purchase}:
        raise BadQuery("purchase", f"{purchase!r} is not a purchase option; use one of "
                       f"{', '.join(p.value for p in Purchase)}")  # fmt: skip
    models: tuple[str, ...] | None = None
    if gpu:
        found = catalog.matching(gpu)
        if not found:
            families = ", ".join(sorted({m.family for m in catalog.models()}))
            raise BadQuery("gpu", f"unknown GPU {gpu!r}; use a model id or a family: {families}")
        models = tuple(m.id for m in found)
    end = parse_time("to", to) if to is not None else now
    start = parse_time("from", from_) if from_ is not None else end - DEFAULT_RANGE
    if start >= end:
        raise BadQuery("from", f"from ({start.isoformat()}) must be before to ({end.isoformat()}); swap them or "
                       "leave one out (the default range is the last 7 days)")  # fmt: skip
    if step_s is None:
        if groups != ("offer",):
            raise BadQuery("step", "step=raw lists each offer's own price changes: use it with group_by=offer, or "
                           "give a step such as 1h")  # fmt: skip
    else:
        aligned = int(start.timestamp()) // step_s * step_s
        start = datetime.fromtimestamp(aligned, UTC)
        points = -(-(end - start).total_seconds() // step_s)
        if points > MAX_POINTS:
            raise BadQuery("step", f"{step} over {end - start} gives {points:.0f} points per series (at most "
                           f"{MAX_POINTS}); use step={_smallest_step((end - start).total_seconds())} or more, "
                           "or a shorter range")  # fmt: skip
    return HistoryQuery(
        start=start, end=end, step_s=step_s, step=step.strip().lower(), agg=agg, group_by=groups, unit=unit,
        gpu_models=models, gpu=gpu, purchase=purchase, provider=provider, region=region,
        instance_type=instance_type, offer_id=offer_id,
    )  # fmt: skip
