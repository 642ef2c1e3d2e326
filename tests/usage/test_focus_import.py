from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from broker.exports.focus_export import focus_csv
from broker.exports.service import ExportParams
from broker.gpus import GpuCatalog
from broker.usage.focus import COLUMNS
from broker.usage.importer import ImportRejected, import_focus
from broker.usage.models import UsageRecord
from tests.exports.conftest import NOW, add_usage, market

HEADER = "ChargeCategory,ChargePeriodStart,ChargePeriodEnd,ProviderName,RegionId,ResourceType,PricingCategory," \
    "ConsumedQuantity,ConsumedUnit,BilledCost,EffectiveCost,Tags,x_GpuType,x_GpuCount"
GOOD = [
    'Usage,2026-11-01T00:00:00Z,2026-11-01T10:00:00Z,AWS,us-east-1,p5.48xlarge,Standard,10,Hours,983.2,983.2,'
    '"{""team"": ""fraud""}",H100-SXM,8',
    "Usage,2026-11-02T00:00:00Z,2026-11-02T05:00:00Z,Lambda,us-east-3,gpu_1x_h100_sxm5,Dynamic,5,Hours,9,9,,H100-SXM,1",
    "Tax,2026-11-01T00:00:00Z,2026-12-01T00:00:00Z,AWS,,,,,,12,12,,,",
    "Usage,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,AWS,us-east-1,s3-storage,Standard,1,GB-Mo,3,3,,,",
]


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one())


def test_valid_bill_imports_gpu_usage_and_skips_the_rest(engine: Engine, catalog: GpuCatalog) -> None:
    result = import_focus(engine, catalog, "\n".join([HEADER, *GOOD]) + "\n")
    assert result.imported == 2
    assert sorted(result.skipped.values()) == [[4], [5]]
    with engine.connect() as conn:
        rows = conn.execute(select(UsageRecord.provider, UsageRecord.gpu_hours, UsageRecord.purchase,
                                   UsageRecord.labels).order_by(UsageRecord.started_at)).all()
    assert [(r.provider, float(r.gpu_hours), r.purchase) for r in rows] == [("aws", 80.0, "on_demand"),
                                                                           ("lambda", 5.0, "spot")]
    assert rows[0].labels == {"team": "fraud"}
    again = import_focus(engine, catalog, "\n".join([HEADER, *GOOD]) + "\n")
    assert (again.imported, again.already_stored, count(engine)) == (0, 2, 2)


def test_bad_rows_are_reported_by_line_and_nothing_is_stored(engine: Engine, catalog: GpuCatalog) -> None:
    bad = [
        GOOD[0],
        "Usage,2026-11-01T10:00:00,2026-11-01T12:00:00Z,AWS,us-east-1,p5.48xlarge,Standard,2,Hours,1,1,,H100-SXM,8",
        GOOD[1],
        "Usage,2026-11-03T00:00:00Z,2026-11-02T00:00:00Z,AWS,us-east-1,p5.48xlarge,Standard,2,Hours,1,1,,H100-SXM,8",
        "Usage,2026-11-03T00:00:00Z,2026-11-04T00:00:00Z,AWS,us-east-1,x,Standard,2,Hours,abc,,,H100-SXM,8",
        "Usage,2026-11-03T00:00:00Z,2026-11-04T00:00:00Z,AWS,us-east-1,x,Standard,2,Hours,1,1,,Quantum-9000,8",
    ]
    with pytest.raises(ImportRejected) as err:
        import_focus(engine, catalog, "\n".join([HEADER, *bad]) + "\n")
    lines = [n for n, _ in err.value.errors]
    assert lines == [3, 5, 6, 7]
    messages = dict(err.value.errors)
    assert "timezone" in messages[3]
    assert "before" in messages[5]
    assert "BilledCost" in messages[6]
    assert "Quantum-9000" in messages[7]
    assert count(engine) == 0


def test_missing_focus_columns_are_an_error_on_line_1(engine: Engine, catalog: GpuCatalog) -> None:
    with pytest.raises(ImportRejected) as err:
        import_focus(engine, catalog, "BilledCost,ProviderName\n1,aws\n")
    assert err.value.errors[0][0] == 1
    assert "ChargePeriodStart" in err.value.errors[0][1]


def test_export_then_import_round_trips(engine: Engine, catalog: GpuCatalog) -> None:
    market(engine, catalog)
    add_usage(engine, NOW - timedelta(days=3), 10, 16, labels={"team": "fraud"}, predictions=1000)
    add_usage(engine, NOW - timedelta(days=2), 5, 1, provider="lambda", purchase="spot")
    text = focus_csv(engine, catalog, ExportParams(lookback_days=30, now=NOW))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == COLUMNS
    aws = next(r for r in rows if r["ProviderName"] == "aws")
    assert (aws["PricingCategory"], aws["ConsumedQuantity"], aws["x_GpuHours"]) == ("Standard", "20", "160")
    assert aws["ListUnitPrice"] == "98.32"  # on-demand p5 in force then, same region
    assert aws["x_ListCostBasis"] == "same_region"
    lam = next(r for r in rows if r["ProviderName"] == "lambda")
    assert lam["PricingCategory"] == "Dynamic"
    # into an empty store: the same usage comes back
    with engine.begin() as conn:
        conn.execute(UsageRecord.__table__.delete())
    result = import_focus(engine, catalog, text)
    assert result.imported == 2
    with engine.connect() as conn:
        back = conn.execute(select(func.sum(UsageRecord.gpu_hours), func.sum(UsageRecord.cost_usd))).one()
    assert (float(back[0]), float(back[1])) == pytest.approx((165.0, 160 * 98.32 / 8 + 5 * 98.32 / 8))


def test_cli_reports_line_numbers_and_exits_non_zero(
    engine: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from broker.usage.cli import usage

    monkeypatch.setenv("BROKER_DATABASE_URL", database_url)
    bill = tmp_path / "bill.csv"
    bill.write_text("\n".join([HEADER, GOOD[0], GOOD[0].replace("2026-11-01T10:00:00Z", "yesterday")]) + "\n")
    result = CliRunner().invoke(usage, ["import", str(bill)])
    assert result.exit_code == 2
    assert f"{bill}:3: ChargePeriodEnd" in result.output
    assert "nothing was imported" in result.output
    assert count(engine) == 0
    bill.write_text("\n".join([HEADER, GOOD[0]]) + "\n")
    ok = CliRunner().invoke(usage, ["import", str(bill)])
    assert ok.exit_code == 0, ok.output
    assert "imported 1" in ok.output
    assert count(engine) == 1
