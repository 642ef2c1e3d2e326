from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from broker.cli.main import cli
from broker.gpus import GpuCatalog
from broker.store.ingest import apply_snapshot
from tests.factories import obs, snap


@pytest.fixture
def env(database_url: str, engine: Engine, tmp_path: Path) -> dict[str, str]:
    return {"BROKER_DATABASE_URL": database_url, "BROKER_DATA_DIR": str(tmp_path)}


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_poll_demo_then_offers_json_match_api_fields(env: dict[str, str]) -> None:
    code, out, _ = run(env, "poll", "--demo", "--json")
    assert code == 0
    summary = {s["source"]: s for s in json.loads(out)}
    assert summary["snapshots"]["outcome"] == "ok"
    assert summary["snapshots"]["offers_seen"] > 0
    code, out, _ = run(env, "offers", "--gpu", "H100", "--json")
    assert code == 0
    offers = json.loads(out)
    assert offers
    assert {o["gpu_model"] for o in offers} <= {"H100-SXM", "H100-PCIE", "H100-NVL"}
    assert all(o["demo"] for o in offers)
    gpu_prices = [o["gpu_hourly_usd"] for o in offers]
    assert gpu_prices == sorted(gpu_prices)


def test_offers_table_and_unknown_gpus(env: dict[str, str], engine: Engine, catalog: GpuCatalog) -> None:
    apply_snapshot(engine, snap([obs("a", "3"), obs("b", "2", gpu="Hyper GPU X", gpus=1)]), catalog)
    code, out, _ = run(env, "offers")
    assert code == 0
    assert "p5.48xlarge" not in out  # instance types are "a" and "b"
    assert "H100-SXM" in out
    code, out, _ = run(env, "offers", "--unknown-gpus", "--json")
    assert [o["gpu_model"] for o in json.loads(out)] == ["Hyper GPU X"]


def test_errors_are_one_line_with_non_zero_exit(env: dict[str, str]) -> None:
    code, _, err = run(env, "offers", "--gpu", "Z999")
    assert code == 2
    assert err.strip().startswith("error: unknown GPU 'Z999'")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(env, "poll", "no-such-source")
    assert code == 2
    assert "unknown source(s) no-such-source" in err


def test_uninitialised_database_says_run_db_upgrade(tmp_path: Path) -> None:
    env = {"BROKER_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "BROKER_DATA_DIR": str(tmp_path)}
    code, _, err = run(env, "offers")
    assert code == 2
    assert "broker db upgrade" in err


def test_config_errors_name_the_setting(tmp_path: Path, database_url: str) -> None:
    bad = tmp_path / "broker.toml"
    bad.write_text('[sources.x]\nkind = "file"\ninterval_minutes = -5\n')
    code, _, err = run({"BROKER_CONFIG": str(bad), "BROKER_DATABASE_URL": database_url}, "offers")
    assert code == 2
    assert "sources.x.interval_minutes" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run({"BROKER_CONFIG": str(tmp_path / "missing.toml")}, "offers")
    assert code == 2
    assert "BROKER_CONFIG" in err
    assert "does not exist" in err
    code, _, err = run({"BROKER_DATABASE_URL": "mysql://x"}, "offers")
    assert code == 2
    assert "BROKER_DATABASE_URL" in err
