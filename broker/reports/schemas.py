"""Showback as CSV (one row per group) and the parsing of the window's bounds."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

from broker.domain import ConfigError

METRICS = (
    "runs", "gpu_hours", "cost_usd", "cost_estimated_usd", "cost_per_run_usd", "cost_per_gpu_hour_usd", "predictions",
    "cost_per_prediction_usd", "on_demand_equivalent_usd", "saving_vs_on_demand_usd", "saving_vs_on_demand_share",
    "unpriced_gpu_hours",
)  # fmt: skip
SHARES = ("spot", "on_demand", "committed")


def parse_bound(name: str, raw: str | None) -> datetime | None:
    """A date (midnight UTC) or a timezone-aware ISO 8601 date-time."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{name}: not an ISO 8601 date or date-time: {raw!r}") from None
    if t.tzinfo is None:
        raise ConfigError(f"{name}: {raw!r} needs a timezone (e.g. 2026-11-01T00:00:00Z)")
    return t.astimezone(UTC)


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    names = report["group_by"]
    w.writerow([*names, *METRICS, *(f"share_{s}" for s in SHARES), "list_price_basis", "summary"])
    for item in report["items"]:
        basis = "; ".join(f"{b}={h:g}" for b, h in item["list_price_basis_gpu_hours"].items())
        w.writerow(
            [
                *(item["group"][n] for n in names),
                *("" if item[m] is None else item[m] for m in METRICS),
                *(item["share"][s] for s in SHARES),
                basis,
                item["summary"],
            ]
        )
    return out.getvalue()
