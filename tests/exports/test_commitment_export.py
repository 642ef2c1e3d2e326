from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import load_workbook

from broker.exports.render import to_csv, to_xlsx
from broker.exports.service import ExportParams, commitment_export
from broker.runtime import Runtime
from tests.exports.conftest import NOW, OD_GPU_HOUR, add_usage, base_and_bursts, market
from tests.exports.test_commitment_math import brute_force


def export(runtime: Runtime, **kw: Any) -> dict[str, Any]:
    runtime.index.refresh()
    params = ExportParams(now=NOW, **({"lookback_days": 30} | kw))
    return commitment_export(runtime.engine, runtime.index.current, runtime.catalog, params)


def test_no_usage_gives_no_recommendation_and_says_so(runtime: Runtime) -> None:
    market(runtime.engine, runtime.catalog)
    body = export(runtime)
    assert body["scopes"] == []
    assert "no usage" in body["message"]
    assert "no commitment" in body["message"]


def test_base_load_with_bursts_commits_to_its_base_per_term(runtime: Runtime) -> None:
    market(runtime.engine, runtime.catalog)
    base_and_bursts(runtime.engine, NOW - timedelta(days=30), 30)
    body = export(runtime)
    (scope,) = body["scopes"]
    prof = scope["profile"]
    assert (prof["p10"], prof["p50"], prof["max"], prof["hours"]) == (16.0, 16.0, 64.0, 720)
    assert prof["trend"]["direction"] == "flat"
    assert scope["alternative"]["gpu_hourly_usd"] == pytest.approx(float(OD_GPU_HOUR))
    recs = {r["term"]: r for r in scope["recommendations"]}
    assert set(recs) == {"1y", "3y"}
    alt = scope["alternative"]["gpu_hourly_usd"]
    for term, rate in (("1y", 60 / 8), ("3y", 40 / 8)):
        r = recs[term]
        assert r["committed_gpu_hourly_usd"] == pytest.approx(rate)
        assert r["level_gpus"] == brute_force(prof["hourly"], rate, alt, 8.0) == 16.0
        assert (r["level_instances"], r["utilisation"]) == (2, 1.0)
        total = 720 * 16 + 30 * 2 * 48
        assert r["coverage"] == pytest.approx(720 * 16 / total)
        assert r["saving_usd"] == pytest.approx(720 * 16 * (alt - rate), abs=0.01)
        assert r["annual_saving_usd"] == pytest.approx(r["saving_usd"] * 8760 / 720, abs=0.02)
    # market evidence: the best price per provider and class, with dates; Lambda's cut on 10 Nov is the best
    lam = next(m for m in scope["market"] if m["provider"] == "lambda" and m["class"] == "on_demand")
    assert (lam["gpu_hourly_usd"], lam["in_force_from"][:10]) == (2.49, "2026-11-10")
    committed = next(m for m in scope["market"] if m["provider"] == "aws" and m["class"] == "committed")
    assert (committed["gpu_hourly_usd"], committed["term"]) == (5.0, "3y")
    assert scope["paid"][0]["effective_gpu_hourly_usd"] == pytest.approx(float(OD_GPU_HOUR))
    # the target is the lowest committed market price, below the break-even of committing to the median
    assert scope["target"]["gpu_hourly_usd"] == 5.0
    assert "aws" in scope["target"]["reasoning"]


def test_when_spot_is_cheap_committing_does_not_pay(runtime: Runtime) -> None:
    market(runtime.engine, runtime.catalog)
    add_usage(runtime.engine, NOW - timedelta(days=30), 720, 16, cost_per_gpu_hour=Decimal(6), purchase="spot")
    (scope,) = export(runtime)["scopes"]
    recs = {r["term"]: r for r in scope["recommendations"]}
    assert recs["1y"]["level_gpus"] == 0.0  # $7.50 committed vs $6 paid on spot
    assert "not below" in recs["1y"]["note"]
    assert recs["3y"]["level_gpus"] == 16.0  # $5.00 committed beats $6 at full use
    assert recs["3y"]["saving_usd"] == pytest.approx(720 * 16 * 1.0, abs=0.01)


def test_a_tie_commits_nothing(runtime: Runtime) -> None:
    market(runtime.engine, runtime.catalog)
    add_usage(runtime.engine, NOW - timedelta(days=30), 720, 16, cost_per_gpu_hour=Decimal(5), purchase="spot")
    (scope,) = export(runtime)["scopes"]
    three = next(r for r in scope["recommendations"] if r["term"] == "3y")
    assert three["level_gpus"] == 0.0  # $5.00 committed vs $5.00 paid: no saving, so no commitment


def test_xlsx_sheets_hold_the_json_numbers(runtime: Runtime) -> None:
    market(runtime.engine, runtime.catalog)
    base_and_bursts(runtime.engine, NOW - timedelta(days=30), 30)
    body = export(runtime)
    wb = load_workbook(io.BytesIO(to_xlsx(body)), read_only=True)
    assert {"About", "Summary", "Recommendations", "Market", "Paid", "Hourly usage"} <= set(wb.sheetnames)

    def sheet(name: str) -> list[dict[str, Any]]:
        rows = list(wb[name].iter_rows(values_only=True))
        return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]

    (scope,) = body["scopes"]
    (summary,) = sheet("Summary")
    for c in ("mean", "p10", "p50", "p90", "max"):
        assert summary[f"usage_{c}"] == scope["profile"][c]
    assert summary["target_gpu_hourly_usd"] == scope["target"]["gpu_hourly_usd"]
    recs = sheet("Recommendations")
    assert len(recs) == len(scope["recommendations"])
    for row, rec in zip(recs, scope["recommendations"], strict=True):
        for k, v in rec.items():
            assert row[k] == (v if v != "" else None), k
    market_rows = sheet("Market")
    assert [r["gpu_hourly_usd"] for r in market_rows] == [m["gpu_hourly_usd"] for m in scope["market"]]
    hourly = sheet("Hourly usage")
    assert [r["H100-SXM (all)"] for r in hourly] == scope["profile"]["hourly"]


def test_csv_has_one_row_per_term(runtime: Runtime) -> None:
    market(runtime.engine, runtime.catalog)
    base_and_bursts(runtime.engine, NOW - timedelta(days=30), 30)
    text = to_csv(export(runtime))
    lines = text.strip().splitlines()
    assert lines[0].startswith("gpu_model,section_provider,runs")
    assert len(lines) == 3  # header, 1y, 3y
    assert "level_gpus" in lines[0]


def test_concentrated_provider_gets_its_own_section(runtime: Runtime) -> None:
    market(runtime.engine, runtime.catalog)
    base_and_bursts(runtime.engine, NOW - timedelta(days=30), 30)
    add_usage(runtime.engine, NOW - timedelta(days=3), 10, 4, provider="lambda", cost_per_gpu_hour=OD_GPU_HOUR)
    body = export(runtime)
    assert [(s["gpu_model"], s["provider"]) for s in body["scopes"]] == [("H100-SXM", None), ("H100-SXM", "aws")]
    assert {r["provider"] for r in body["scopes"][1]["recommendations"]} == {"aws"}
    only_lambda = export(runtime, provider="lambda")
    (scope,) = only_lambda["scopes"]
    assert scope["recommendations"] == []
    assert "no committed rate" in scope["recommendation_note"]
