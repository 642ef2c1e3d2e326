"""The commitment export as CSV (one row per section and term) and as an XLSX workbook (one sheet per section).

Every number in the workbook is copied from the JSON export, never recomputed, so the two cannot disagree.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook

SCOPE_COLUMNS = ("gpu_model", "section_provider", "runs", "gpu_hours_in_window")
PROFILE_COLUMNS = ("mean", "p10", "p50", "p90", "max")
TREND_COLUMNS = ("direction", "slope_gpus_per_30_days", "first_half_mean", "second_half_mean")
REC_COLUMNS = (
    "provider", "purchase", "term", "payment", "plan", "region", "instance_type", "gpus_per_instance",
    "committed_gpu_hourly_usd", "discount_vs_alternative", "break_even_utilisation", "level_gpus", "level_instances",
    "hourly_commitment_usd", "cost_without_usd", "cost_with_usd", "saving_usd", "saving_share", "coverage",
    "utilisation", "annual_saving_usd", "recent_72h_level_gpus", "note",
)  # fmt: skip
MARKET_COLUMNS = (
    "provider", "class", "gpu_hourly_usd", "purchase", "term", "payment", "plan", "region", "instance_type",
    "in_force_from", "in_force_to", "still_current", "current_gpu_hourly_usd",
)  # fmt: skip
PAID_COLUMNS = ("provider", "gpu_hours", "cost_usd", "effective_gpu_hourly_usd")


def _scope_cells(s: dict[str, Any]) -> list[Any]:
    return [s["gpu_model"], s["provider"] or "all", s["runs"], s["gpu_hours_in_window"]]


def summary_rows(export: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    header = [
        *SCOPE_COLUMNS, *(f"usage_{c}" for c in PROFILE_COLUMNS), *(f"trend_{c}" for c in TREND_COLUMNS),
        "alternative_gpu_hourly_usd", "alternative_basis", "target_gpu_hourly_usd", "target_reasoning",
        "recommendation_note",
    ]  # fmt: skip
    rows = []
    for s in export["scopes"]:
        p = s["profile"]
        rows.append(
            [
                *_scope_cells(s),
                *(p[c] for c in PROFILE_COLUMNS),
                *(p["trend"][c] for c in TREND_COLUMNS),
                s["alternative"]["gpu_hourly_usd"],
                s["alternative"]["basis"],
                s["target"]["gpu_hourly_usd"],
                s["target"]["reasoning"],
                s["recommendation_note"],
            ]
        )
    return header, rows


def _rows(export: dict[str, Any], key: str, columns: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    header = [*SCOPE_COLUMNS, *columns]
    return header, [[*_scope_cells(s), *(item.get(c) for c in columns)] for s in export["scopes"] for item in s[key]]


def recommendation_rows(export: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    return _rows(export, "recommendations", REC_COLUMNS)


def hourly_rows(export: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    header = ["hour", *(f"{s['gpu_model']} ({s['provider'] or 'all'})" for s in export["scopes"])]
    series = [s["profile"]["hourly"] for s in export["scopes"]]
    n = max((len(x) for x in series), default=0)
    return header, [[h, *(x[h] for x in series)] for h in range(n)]


def to_csv(export: dict[str, Any]) -> str:
    """The decision table: one row per section and term, with the section's profile and target repeated."""
    s_header, s_rows = summary_rows(export)
    by_scope = {tuple(r[:2]): r for r in s_rows}
    r_header, r_rows = recommendation_rows(export)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([*s_header, *r_header[len(SCOPE_COLUMNS) :]])
    for row in r_rows:
        w.writerow([*by_scope[tuple(row[:2])], *row[len(SCOPE_COLUMNS) :]])
    for key, srow in by_scope.items():  # sections without any term on offer still appear, with their note
        if not any(tuple(r[:2]) == key for r in r_rows):
            w.writerow(srow)
    return out.getvalue()


def to_xlsx(export: dict[str, Any]) -> bytes:
    wb = Workbook()
    about = wb.active
    about.title = "About"
    for k in ("generated_at", "message", "method"):
        about.append([k, export[k]])
    about.append(["window_from", export["window"]["from"]])
    about.append(["window_to", export["window"]["to"]])
    about.append(["lookback_days", export["window"]["lookback_days"]])
    about.append(["gpu_filter", export["filters"]["gpu"]])
    about.append(["provider_filter", export["filters"]["provider"]])
    for unit, text in export["units"].items():
        about.append([f"unit_{unit}", text])
    sheets = {
        "Summary": summary_rows(export),
        "Recommendations": recommendation_rows(export),
        "Market": _rows(export, "market", MARKET_COLUMNS),
        "Paid": _rows(export, "paid", PAID_COLUMNS),
        "Hourly usage": hourly_rows(export),
    }
    for title, (header, rows) in sheets.items():
        ws = wb.create_sheet(title)
        ws.append(header)
        for row in rows:
            ws.append(row)
        ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
