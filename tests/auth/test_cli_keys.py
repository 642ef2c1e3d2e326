from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from broker.auth import service
from broker.auth.cli import commands, keys
from broker.auth.service import KeyStore


@pytest.fixture
def env(database_url: str, engine: Engine, tmp_path: Path) -> dict[str, str]:
    return {"BROKER_DATABASE_URL": database_url, "BROKER_DATA_DIR": str(tmp_path)}


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(keys, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_commands_export_the_keys_group() -> None:
    assert [c.name for c in commands] == ["keys"]


def test_create_prints_the_token_once_and_it_works(env: dict[str, str], engine: Engine) -> None:
    code, out, err = run(env, "create", "--name", "slurm", "--scope", "place", "--scope", "read")
    assert code == 0, err
    tokens = re.findall(r"gpb_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", out)
    assert len(tokens) == 1
    assert "not be shown again" in err
    info = KeyStore(engine).authenticate(tokens[0])
    assert info is not None
    assert info.name == "slurm"
    assert [s.value for s in info.scopes] == ["place", "read"]
    code, listed, _ = run(env, "list")
    assert code == 0
    assert info.id in listed
    assert "slurm" in listed
    assert tokens[0] not in listed
    assert tokens[0].split("_", 2)[2] not in listed


def test_list_json_revoke_and_errors(env: dict[str, str], engine: Engine) -> None:
    a, _ = service.create_key(engine, "a", ["read"])
    code, out, _ = run(env, "create", "--name", "bench", "--scope", "place", "--rate-limit", "0", "--json")
    assert code == 0
    created = json.loads(out)
    assert created["rate_per_second"] == 0
    assert created["token"].startswith(f"gpb_{created['id']}_")
    code, out, _ = run(env, "revoke", a.id)
    assert code == 0
    assert f"revoked key {a.id}" in out
    code, out, _ = run(env, "list", "--json")
    assert [k["id"] for k in json.loads(out)] == [created["id"]]
    code, out, _ = run(env, "list", "--all", "--json")
    assert {k["id"] for k in json.loads(out)} == {a.id, created["id"]}
    assert "token" not in out
    code, _, err = run(env, "revoke", a.id)
    assert code == 2
    assert err.strip() == f"error: API key '{a.id}' is already revoked"
    code, _, err = run(env, "create", "--name", "x", "--scope", "write")
    assert code == 2
    assert "write" in err
    code, _, err = run(env, "create", "--name", "x")
    assert code == 2
    assert "--scope" in err
