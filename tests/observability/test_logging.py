from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import get
from litestar.testing import TestClient

from broker.auth import service
from broker.observability.logging import (
    BackgroundHandler,
    JsonFormatter,
    RedactingFilter,
    configure_logging,
    request_id_var,
)
from broker.observability.redact import MASK, Redactor, secrets_in_env
from broker.runtime import Runtime
from tests.auth.app_helper import secured_app

log = logging.getLogger("tests.handler")


@get("/v1/log-probe-async")
async def probe_async() -> dict[str, str]:
    log.warning("inside async handler")
    return {}


@get("/v1/log-probe-thread", sync_to_thread=True)
def probe_thread() -> dict[str, str]:
    log.warning("inside threaded handler")
    return {}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging(logging.INFO, env={"LAMBDA_API_KEY": "lambda-secret-value-123"}, stream=stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def client(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with TestClient(app=secured_app(runtime, monkeypatch, extra=[probe_async, probe_thread])) as c:
        yield c


def test_request_id_is_returned_and_on_every_log_line(
    client: Any, runtime: Runtime, captured: io.StringIO
) -> None:
    info, token = service.create_key(runtime.engine, "k", ["read"], rate_per_second=0)
    headers = {"Authorization": f"Bearer {token}"}
    r = client.get("/v1/log-probe-async", headers={**headers, "X-Request-ID": "job-42.attempt-1"})
    assert r.headers["x-request-id"] == "job-42.attempt-1"
    r2 = client.get("/v1/log-probe-thread", headers=headers)
    generated = r2.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    for bad in ("x" * 200, "two words", "a;b"):
        assert client.get("/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"] != bad
    out = lines(captured)
    inside = {e["message"]: e.get("request_id") for e in out if e["logger"] == "tests.handler"}
    assert inside == {"inside async handler": "job-42.attempt-1", "inside threaded handler": generated}
    access = [e for e in out if e["logger"] == "broker.access"]
    first = next(e for e in access if e["request_id"] == "job-42.attempt-1")
    assert first["status"] == 200
    assert first["method"] == "GET"
    assert first["route"] == "/v1/log-probe-async"
    assert first["api_key"] == info.id
    assert first["duration_ms"] >= 0
    assert token not in captured.getvalue()


def test_rejected_requests_are_logged_with_their_status_and_id(client: Any, captured: io.StringIO) -> None:
    r = client.get("/v1/offers", headers={"Authorization": "Bearer gpb_00000000_" + "A" * 43})
    assert r.status_code == 401
    assert r.headers["x-request-id"]  # problems carry the id too
    entry = next(e for e in lines(captured) if e["logger"] == "broker.access")
    assert entry["status"] == 401
    assert entry["request_id"] == r.headers["x-request-id"]
    assert entry["api_key"] is None
    assert "gpb_00000000_" not in captured.getvalue()


def test_known_secrets_are_redacted_everywhere_in_a_record(captured: io.StringIO) -> None:
    secret = "lambda-secret-value-123"
    logger = logging.getLogger("tests.redact")
    logger.warning("key is %s", secret)
    logger.warning(f"inline {secret}")
    logger.warning("extra field", extra={"detail": f"token={secret}"})
    try:
        raise RuntimeError(f"provider said: bad key {secret}")
    except RuntimeError:
        logger.exception("poll crashed")
    text = captured.getvalue()
    assert secret not in text
    out = lines(captured)
    assert [e["message"] for e in out[:2]] == [f"key is {MASK}", f"inline {MASK}"]
    assert out[2]["detail"] == f"token={MASK}"
    assert "RuntimeError" in out[3]["exc"]
    assert MASK in out[3]["exc"]


def test_secrets_in_env() -> None:
    env = {
        "AWS_SECRET_ACCESS_KEY": "aws-secret-0123456789",
        "MY_SERVICE_TOKEN": "tok-0123456789",
        "CRUSOE_ACCESS_KEY": "short",  # too short to redact safely
        "HOME": "/home/someone-long-path",
        "BROKER_DATABASE_URL": "postgresql+psycopg://broker:db-password-42@db:5432/broker",
    }
    found = secrets_in_env(env)
    assert set(found) == {"aws-secret-0123456789", "tok-0123456789", "db-password-42"}
    redact = Redactor(found)
    assert redact("x aws-secret-0123456789 y db-password-42") == f"x {MASK} y {MASK}"
    assert Redactor()("nothing to hide") == "nothing to hide"


def test_formatter_and_filter_compose_without_the_configured_handler() -> None:
    record = logging.LogRecord("n", logging.ERROR, __file__, 1, "value %s and %d", ("abcdefgh-secret", 3), None)
    assert RedactingFilter(Redactor(["abcdefgh-secret"])).filter(record)
    out = json.loads(JsonFormatter().format(record))
    assert out["message"] == f"value {MASK} and 3"
    assert out["level"] == "error"
    assert out["ts"].endswith("+00:00")


def test_the_served_app_keeps_our_json_redacting_handler(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """`broker serve` configures logging first and then builds the app: starting the app must not swap the
    root handler for a plain-text one (which would drop the JSON format and the secret redaction)."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging(logging.INFO, env={"LAMBDA_API_KEY": "lambda-secret-value-123"}, stream=stream)
    try:
        with_auth_off = secured_app(runtime, monkeypatch, auth=False)
        with TestClient(app=with_auth_off) as c:
            assert c.get("/healthz").status_code == 200
            logging.getLogger("tests.served").warning("token lambda-secret-value-123")
        assert handler in root.handlers
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    out = lines(stream)
    access = [e for e in out if e["logger"] == "broker.access" and e["path"] == "/healthz"]
    assert access and access[0]["status"] == 200 and access[0]["request_id"]
    assert [e["message"] for e in out if e["logger"] == "tests.served"] == [f"token {MASK}"]


def test_background_writer_keeps_format_request_id_and_redaction() -> None:
    """The service logs through a writer thread: what the caller knew (its request id, the message's arguments,
    the traceback) must reach the line, and secrets must still be masked."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging(
        logging.INFO, env={"LAMBDA_API_KEY": "lambda-secret-value-123"}, stream=stream, background=True
    )
    try:
        assert isinstance(handler, BackgroundHandler)
        token = request_id_var.set("req-42")
        args = ["lambda-secret-value-123"]
        try:
            logging.getLogger("tests.bg").info("key %s", args[0], extra={"route": "/v1/place"})
            try:
                raise RuntimeError("boom lambda-secret-value-123")
            except RuntimeError:
                logging.getLogger("tests.bg").exception("failed")
        finally:
            request_id_var.reset(token)
        args[0] = "changed"  # the line was fixed when it was logged
        handler.flush()
        out = [e for e in lines(stream) if e["logger"] == "tests.bg"]
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)
    assert [e["message"] for e in out] == [f"key {MASK}", "failed"]
    assert all(e["request_id"] == "req-42" for e in out)
    assert out[0]["route"] == "/v1/place"
    assert "RuntimeError: boom" in out[1]["exc"] and "lambda-secret-value-123" not in out[1]["exc"]
    handler.flush()  # after close: returns at once
