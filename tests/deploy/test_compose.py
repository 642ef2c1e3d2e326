"""deploy/compose.yaml: PostgreSQL, a one-shot migration, two broker replicas on it, in the right order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from broker.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # merge keys (<<: *broker) resolved here
    svc: dict[str, Any] = doc["services"]
    return svc


def _brokers(services: dict[str, Any]) -> dict[str, Any]:
    return {n: s for n, s in services.items() if s.get("command", [""])[0] == "serve"}


def test_two_replicas_and_a_one_shot_migration(services: dict[str, Any]) -> None:
    brokers = _brokers(services)
    assert len(brokers) >= 2
    migrate = services["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    for name, s in brokers.items():
        assert s["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}, name
        assert s["command"][:3] == ["serve", "--host", "0.0.0.0"]
        assert CliRunner().invoke(cli, [*s["command"], "--help"]).exit_code == 0


def test_replicas_share_one_database_that_postgres_serves(services: dict[str, Any]) -> None:
    pg = services["postgres"]["environment"]
    urls = {s["environment"]["BROKER_DATABASE_URL"] for s in [*_brokers(services).values(), services["migrate"]]}
    assert len(urls) == 1
    url = make_url(urls.pop().replace("${BROKER_DB_PASSWORD:-broker}", "pw"))
    assert url.get_backend_name() == "postgresql"
    assert url.host == "postgres"
    assert url.database == pg["POSTGRES_DB"]
    assert url.username == pg["POSTGRES_USER"]


def test_published_ports_are_loopback_and_distinct(services: dict[str, Any]) -> None:
    published = [p for s in _brokers(services).values() for p in s["ports"]]
    assert len(published) == len(set(published))
    for p in published:
        host, _, rest = p.partition(":")
        assert host == "127.0.0.1", f"{p}: publish on loopback; put a proxy with TLS in front for more"
        assert rest.endswith(":8000")


def test_build_context_holds_the_dockerfile(services: dict[str, Any]) -> None:
    for name, s in [*_brokers(services).items(), ("migrate", services["migrate"])]:
        build = s["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file(), name
