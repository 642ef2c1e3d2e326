"""Provider credentials never reach logs, errors, API responses or the database's poll records.

Fake credentials go into the environment; every source that uses them polls against a network that fails or
answers with errors that echo the request (headers, URL) back; then the API is asked everything it serves. Every
captured text is searched for every secret value."""

from __future__ import annotations

import io
import json
import logging
import secrets
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from broker.auth import service
from broker.observability.logging import configure_logging
from broker.polling.service import poll_source
from broker.runtime import Runtime
from broker.settings import DEFAULT_CONFIG, load_settings
from broker.store.ingest import IngestResult
from broker.store.models import PollRun, table
from tests.auth.app_helper import secured_app

FAKE = {
    "AWS_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8).upper(),
    "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
    "LAMBDA_API_KEY": "secret_" + secrets.token_hex(16),
    "CRUSOE_ACCESS_KEY": "crusoe-access-" + secrets.token_hex(8),
    "CRUSOE_SECRET_KEY": secrets.token_urlsafe(24),
    "GCP_API_KEY": "AIza" + secrets.token_urlsafe(26),
}
NOT_SECRET = {"CRUSOE_PROJECT_ID": "project-123", "AWS_MAX_ATTEMPTS": "1", "AWS_DEFAULT_REGION": "us-east-1"}

CONFIG = """
# short budgets: the adapters' own retries give up instead of backing off (their sleeps are real)
[sources.lambda]
kind = "lambda"
timeout_seconds = 1
max_attempts = 1
[sources.crusoe]
kind = "crusoe"
timeout_seconds = 1
max_attempts = 1
[sources.aws]
kind = "aws"
regions = ["us-east-1"]
timeout_seconds = 4
max_attempts = 1
[sources.gcp]
kind = "gcp"
timeout_seconds = 1
max_attempts = 1
"""


def echo(status: int) -> httpx.MockTransport:
    """A provider that rejects the request and repeats all of it back, credentials included."""

    def handle(request: httpx.Request) -> httpx.Response:
        # the credential-bearing headers first, so that even a truncated error body would carry them
        first = sorted(request.headers.items(), key=lambda kv: kv[0].lower() not in ("authorization", "x-api-key"))
        sent = "; ".join(f"{k}={v}" for k, v in first)
        return httpx.Response(status, text=f"{sent}; url={request.url}")

    return httpx.MockTransport(handle)


def unreachable() -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    return httpx.MockTransport(handle)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Name resolution fails for every non-loopback host: real clients (boto3, google) fail without sending."""
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("localhost", "127.0.0.1", "::1"):
            return real(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "name resolution disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.fixture
def logs() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """(the broker's own handler at DEBUG, a raw handler with no redaction at INFO)."""
    root = logging.getLogger()
    level = root.level
    ours = io.StringIO()
    handler = configure_logging(logging.DEBUG, env={**FAKE, **NOT_SECRET}, stream=ours)
    raw_stream = io.StringIO()
    raw = logging.StreamHandler(raw_stream)
    raw.setLevel(logging.INFO)
    raw.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root.addHandler(raw)
    yield ours, raw_stream
    root.removeHandler(handler)
    root.removeHandler(raw)
    root.setLevel(level)


def test_credentials_never_leak(
    runtime: Runtime,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_network: None,
    logs: tuple[io.StringIO, io.StringIO],
) -> None:
    config_dir = tmp_path / "config"  # gpus.toml, placement.toml, rate cards ... as shipped
    shutil.copytree(Path(DEFAULT_CONFIG).parent, config_dir)
    config = config_dir / "broker.toml"
    config.write_text(CONFIG, encoding="utf-8")
    runtime.settings = load_settings(
        {"BROKER_CONFIG": str(config), "BROKER_DATABASE_URL": database_url, "BROKER_DATA_DIR": str(tmp_path)}
    )
    for name, value in {**FAKE, **NOT_SECRET}.items():
        monkeypatch.setenv(name, value)  # boto3 and google read os.environ
    runtime.env = {**FAKE, **NOT_SECRET}
    no_sleep = lambda s: None  # noqa: E731
    sources = runtime.settings.sources

    results = []
    for transport in (echo(400), echo(401), echo(500), unreachable()):
        for name in ("lambda", "crusoe"):
            with httpx.Client(transport=transport) as http:
                results.append(poll_source(runtime, sources[name], http=http, sleep=no_sleep))
    for name in ("aws", "gcp"):  # real clients, no network
        results.append(poll_source(runtime, sources[name], sleep=no_sleep))
    assert all(isinstance(r, IngestResult) and r.outcome.value == "failed" for r in results), results
    logging.getLogger("test").warning("a careless log line with %s", FAKE["LAMBDA_API_KEY"])

    _, admin = service.create_key(runtime.engine, "admin", ["admin"], rate_per_second=0)
    auth = {"Authorization": f"Bearer {admin}"}
    with TestClient(app=secured_app(runtime, monkeypatch)) as client:
        responses = [
            client.get(path, headers=auth)
            for path in ("/v1/providers", "/v1/offers", "/metrics", "/v1/keys", "/readyz", "/schema/openapi.json")
        ]
        responses.append(client.get("/v1/providers", headers={"Authorization": f"Bearer {FAKE['GCP_API_KEY']}"}))
        responses.append(client.get("/v1/offers", headers=auth, params={"provider": FAKE["CRUSOE_SECRET_KEY"][:5]}))
    providers = responses[0].json()["providers"]
    assert {p["source"]: p["last_poll"]["outcome"] for p in providers} == dict.fromkeys(sources, "failed")
    assert all(p["last_poll"]["error"] for p in providers)

    with runtime.engine.connect() as conn:
        stored = [dict(r) for r in conn.execute(select(table(PollRun))).mappings()]
    ours, raw = logs
    texts = {
        "poll results": json.dumps([getattr(r, "error", "") for r in results]),
        "poll_runs rows": json.dumps(stored, default=str),
        "API responses": "\n".join(r.text + json.dumps(dict(r.headers)) for r in responses),
        "broker logs (DEBUG, redacted)": ours.getvalue(),
    }
    raw_text = raw.getvalue().replace(FAKE["LAMBDA_API_KEY"], "")  # the deliberate careless line aside
    texts["raw logs (INFO)"] = raw_text
    leaks = [(where, name) for where, text in texts.items() for name, value in FAKE.items() if value in text]
    assert not leaks, f"secrets found in: {leaks}"
    assert "[REDACTED]" in ours.getvalue()  # the careless line was caught by the filter
    assert ours.getvalue().strip()
