from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from openpyxl import load_workbook

from broker.domain import utcnow
from broker.exports.endpoints import ROUTES, XLSX
from broker.runtime import Runtime
from tests.exports.conftest import add_usage, market
from tests.usage.helpers import app_for


@pytest.fixture
def loaded(runtime: Runtime) -> Runtime:
    market(runtime.engine, runtime.catalog)
    start = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(days=10)
    add_usage(runtime.engine, start, 24 * 10, 16)  # up to the last whole hour
    runtime.index.refresh()
    return runtime


def test_every_format(loaded: Runtime) -> None:
    with TestClient(app=app_for(loaded, ROUTES)) as client:
        body = client.get("/v1/exports/commitments", params={"lookback_days": 10, "gpu": "H100"}).json()
        (scope,) = body["scopes"]
        assert {r["term"]: r["level_gpus"] for r in scope["recommendations"]} == {"1y": 16.0, "3y": 16.0}
        csv_r = client.get("/v1/exports/commitments", params={"format": "csv"})
        assert csv_r.headers["content-type"].startswith("text/csv")
        assert len(csv_r.text.strip().splitlines()) == 3
        x = client.get("/v1/exports/commitments", params={"format": "xlsx"})
        assert x.headers["content-type"] == XLSX
        assert "Recommendations" in load_workbook(io.BytesIO(x.content)).sheetnames
        focus = client.get("/v1/exports/commitments", params={"format": "focus"})
        assert focus.text.startswith("BilledCost,BillingAccountId")
        assert len(focus.text.strip().splitlines()) == 2
        unknown = client.get("/v1/exports/commitments", params={"gpu": "Quantum-9000"})
        assert unknown.status_code == 400
        assert client.get("/v1/exports/commitments", params={"format": "pdf"}).status_code == 400
        assert client.get("/v1/exports/commitments", params={"lookback_days": 0}).status_code == 400


def test_cli_writes_each_format(
    loaded: Runtime, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from broker.exports.cli import export

    monkeypatch.setenv("BROKER_DATABASE_URL", database_url)
    out = CliRunner().invoke(export, ["commitments", "--lookback-days", "30"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["scopes"][0]["gpu_model"] == "H100-SXM"
    book = tmp_path / "c.xlsx"
    res = CliRunner().invoke(export, ["commitments", "--format", "xlsx", "--output", str(book)])
    assert res.exit_code == 0, res.output
    assert "Summary" in load_workbook(book).sheetnames
    no_file = CliRunner().invoke(export, ["commitments", "--format", "xlsx"])
    assert no_file.exit_code == 2
    assert "--output" in no_file.output
