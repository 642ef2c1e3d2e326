from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from broker.gpus import GpuCatalog
from broker.history.chart import draw
from broker.history.cli import commands
from tests.history.helpers import obs, poll


@click.group()
def cli() -> None:
    """The history commands alone (the lead wires them into ``broker``)."""


for command in commands:
    cli.add_command(command)


@pytest.fixture
def env(database_url: str, engine: Engine, catalog: GpuCatalog, tmp_path: Path) -> dict[str, str]:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    for h, spot in enumerate(("24", "16", "16", "20", "24", "24")):
        poll(engine, catalog, start + timedelta(hours=h), [
            obs("p5.48xlarge", "80", gpus=8),
            obs("p5.48xlarge", spot, gpus=8, purchase="spot", zone="us-east-1a"),
            obs("a3-highgpu-8g", "88", gpus=8, provider="gcp", region="us-central1"),
        ])  # fmt: skip
    return {"BROKER_DATABASE_URL": database_url, "BROKER_DATA_DIR": str(tmp_path)}


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_history_table_csv_json(env: dict[str, str]) -> None:
    code, out, _ = run(env, "history", "--gpu", "H100", "--from", _ago(7), "--group-by", "provider,purchase")
    assert code == 0
    assert "aws/spot" in out and "gcp/on_demand" in out and "USD per GPU-hour" in out
    code, out, _ = run(env, "history", "--gpu", "H100", "--purchase", "spot", "--from", _ago(7), "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [float(r["value"]) for r in rows] == [3.0, 2.0, 2.0, 2.5, 3.0, 3.0, 3.0]  # the last holds until now
    code, out, _ = run(env, "history", "--gpu", "H100", "--purchase", "spot", "--agg", "max", "--json")
    assert json.loads(out)["agg"] == "max"


def test_history_chart_draws_every_series(env: dict[str, str]) -> None:
    code, out, _ = run(env, "history", "--gpu", "H100", "--from", _ago(7), "--group-by", "provider,purchase",
                       "--chart")  # fmt: skip
    assert code == 0
    assert "* aws/on_demand" in out and "o aws/spot" in out and "+ gcp/on_demand" in out
    plot = [line.split("|", 1)[1] for line in out.splitlines() if "|" in line]
    gcp = [row for row in plot if "+" in row]
    assert len(gcp) == 1 and gcp[0].strip(" +") == ""  # one flat line: gcp's price never changed
    assert len([row for row in plot if "o" in row]) == 3  # aws spot at $3, $2 and $2.5 per GPU-hour


def test_chart_puts_high_prices_high_and_leaves_gaps_empty() -> None:
    t = datetime(2026, 11, 1, tzinfo=UTC)
    points = [(t, 1.0), (t + timedelta(hours=1), 3.0), (t + timedelta(hours=4), 2.0)]
    text = draw([("a", points)], width=9, height=3, step=timedelta(hours=1))
    rows = [line.split("|", 1)[1] for line in text.splitlines()[:3]]
    assert rows == ["  *      ", "        *", "**       "]  # 1.0 held to the next hour; hours 2-3 missing: empty
    raw = draw([("a", points)], width=9, height=3)  # raw changes: each price holds until the next
    assert [line.split("|", 1)[1] for line in raw.splitlines()[:3]] == ["  ****** ", "        *", "**       "]


def test_history_errors_name_the_option(env: dict[str, str]) -> None:
    code, _, err = run(env, "history", "--step", "7 minutes")
    assert code == 2 and err.startswith("error: --step:") and len(err.strip().splitlines()) == 1
    code, _, err = run(env, "history", "--gpu", "Z999")
    assert code == 2 and "unknown GPU 'Z999'" in err


def test_market_table_and_json(env: dict[str, str]) -> None:
    code, out, _ = run(env, "market", "H100-SXM")
    assert code == 0
    assert "cheapest now" in out and "spot discount vs on-demand: 70% overall" in out
    code, out, _ = run(env, "market", "H100-SXM", "--json")
    view = json.loads(out)
    assert view["cheapest"][0] == view["cheapest"][0] | {"provider": "aws", "purchase": "spot", "gpu_hourly_usd": 3.0}


def _ago(hours: int) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()
