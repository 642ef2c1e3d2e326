from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from litestar.testing import TestClient

from broker.reports.endpoints import ROUTES
from broker.reports.service import money, showback
from broker.runtime import Runtime
from tests.exports.conftest import NOW, add_usage, market
from tests.usage.helpers import app_for

FRAUD = {"team": "fraud", "project": "scoring"}
ADS = {"team": "ads", "project": "ranking"}


def day(d: int, h: int = 0) -> datetime:
    return datetime(2026, 11, d, h, tzinfo=UTC)


@pytest.fixture
def usage(runtime: Runtime) -> Runtime:
    e = runtime.engine
    market(e, runtime.catalog)
    add_usage(e, day(3), 125, 8, cost_per_gpu_hour=Decimal("4.115"), purchase="spot", labels=FRAUD,
              predictions=1_789_130)
    add_usage(e, day(5), 10, 1, cost_per_gpu_hour=Decimal("2.99"), provider="lambda", labels=ADS)
    add_usage(e, day(12), 10, 1, cost_per_gpu_hour=Decimal("2.49"), provider="lambda", labels=ADS)
    add_usage(e, day(15), 4, 1, cost_per_gpu_hour=Decimal("3.00"), provider="gcp", labels=ADS)
    add_usage(e, datetime(2026, 10, 20, tzinfo=UTC), 10, 8, labels=FRAUD)  # last month: outside the window
    return runtime


def test_showback_per_team_and_project_in_business_terms(usage: Runtime) -> None:
    report = showback(usage.engine, ["team", "project"], now=NOW)
    fraud, ads = report["items"]
    assert fraud["summary"] == "team fraud, project scoring: $4,115 this month, $0.0023 per prediction"
    assert (fraud["runs"], fraud["gpu_hours"], fraud["cost_usd"]) == (1, 1000.0, 4115.0)
    assert fraud["share"] == {"spot": 1.0, "on_demand": 0.0, "committed": 0.0}
    # against AWS on-demand p5 in force on 3 Nov: 98.32 / 8 per GPU-hour
    assert fraud["on_demand_equivalent_usd"] == pytest.approx(1000 * 12.29)
    assert fraud["saving_vs_on_demand_usd"] == pytest.approx(1000 * 12.29 - 4115)
    assert fraud["list_price_basis_gpu_hours"] == {"same_region": 1000.0}

    assert (ads["runs"], ads["gpu_hours"]) == (3, 24.0)
    assert ads["cost_usd"] == pytest.approx(29.9 + 24.9 + 12.0)
    assert ads["cost_per_run_usd"] == pytest.approx((29.9 + 24.9 + 12.0) / 3, abs=1e-4)
    # Lambda at the price in force each day (2.99, then 2.49 from 10 Nov); GCP has no on-demand price in the
    # history, so it is compared with the cheapest provider's (Lambda, 2.49 on 15 Nov)
    assert ads["on_demand_equivalent_usd"] == pytest.approx(29.9 + 24.9 + 4 * 2.49)
    assert ads["list_price_basis_gpu_hours"] == {"market_cheapest": 4.0, "same_region": 20.0}
    assert ads["summary"].startswith("team ads, project ranking: $66.80 this month, $22.27 per run")


def test_group_by_a_column_and_a_past_month(usage: Runtime) -> None:
    report = showback(usage.engine, ["provider"], datetime(2026, 10, 1, tzinfo=UTC), day(1), now=NOW)
    (only,) = report["items"]
    assert only["group"] == {"provider": "aws"}
    assert report["period"] == "in October 2026"
    assert only["summary"] == "provider aws: $983 in October 2026, $983 per run"


def test_missing_label_groups_under_none(usage: Runtime) -> None:
    report = showback(usage.engine, ["cost_center"], now=NOW)
    assert [i["group"] for i in report["items"]] == [{"cost_center": "(none)"}]


def test_money_phrasing() -> None:
    assert [money(x) for x in (4115.2, 12.5, 0.0023, 0)] == ["$4,115", "$12.50", "$0.0023", "$0.00"]


def test_api_json_csv_and_bad_bounds(usage: Runtime) -> None:
    with TestClient(app=app_for(usage, ROUTES)) as client:
        params = {"group_by": "team,project", "from": "2026-11-01", "to": "2026-11-27T00:00:00Z"}
        body = client.get("/v1/reports/showback", params=params).json()
        assert [i["group"]["team"] for i in body["items"]] == ["fraud", "ads"]
        r = client.get("/v1/reports/showback", params=params, headers={"Accept": "text/csv"})
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [(x["team"], x["project"], float(x["cost_usd"])) for x in rows] == [
            ("fraud", "scoring", 4115.0), ("ads", "ranking", pytest.approx(66.8))]
        assert rows[0]["summary"].endswith("$0.0023 per prediction")
        naive = client.get("/v1/reports/showback", params={"from": "2026-11-01T00:00:00"})
        assert naive.status_code == 400
        assert "timezone" in naive.json()["detail"]
        backwards = client.get("/v1/reports/showback", params={"from": "2026-11-10", "to": "2026-11-01"})
        assert backwards.status_code == 400
