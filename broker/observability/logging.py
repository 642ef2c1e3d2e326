"""Structured JSON logs with a request id, and a filter that removes known secret values from every record.

``configure_logging`` installs one stderr handler on the root logger; ``RequestContextMiddleware`` gives each
request an id (the caller's ``X-Request-ID`` when well-formed), returns it as a header, puts it on every log line
written while the request runs, writes one ``broker.access`` line per request and feeds the HTTP metrics.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from broker.ids import random_uuid
from broker.observability.metrics import record_request
from broker.observability.redact import Redactor, secrets_in_env

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
access_log = logging.getLogger("broker.access")

# one line per request: msgspec writes it several times faster than json.dumps; anything it cannot encode is str()-ed
_encode = msgspec.json.Encoder(enc_hook=str).encode
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, any ``extra=`` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id_var.get()
        if rid:
            out["request_id"] = rid
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                out[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return _encode(out).decode()


class RedactingFilter(logging.Filter):
    """Replaces known secret values in the message, its arguments, extra fields and the traceback.

    Installed on handlers, not loggers: a handler filter sees records propagated from every logger."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD and isinstance(value, str):
                setattr(record, name, self.redact(value))
        return True


_OURS = "_broker_handler"


class BackgroundHandler(logging.Handler):
    """Hands records to a thread that formats, redacts and writes them, so that a write that blocks (a slow disk,
    a full pipe to the log collector) never holds up the event loop. Under load, access-log writes to a file on
    the database's disk stalled the loop for 40-170 ms while SQLite synced.

    The writer gathers what arrives within ``window_s`` and writes it at once: one wake-up and one write for many
    lines, where a thread woken per line cost more CPU per request than writing inline. What belongs to the
    calling thread is fixed before the hand-over: the message with its arguments, the traceback text and the
    request id (a context variable the writer cannot see)."""

    def __init__(self, target: logging.StreamHandler[IO[str]], window_s: float = 0.05) -> None:
        super().__init__()
        self.target = target
        self.window_s = window_s
        self._queue: queue.SimpleQueue[logging.LogRecord | threading.Event | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = threading.Thread(target=self._write, name="log-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def emit(self, record: logging.LogRecord) -> None:
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        self._queue.put_nowait(record)

    def flush(self) -> None:
        """Wait until every record handed over so far is written."""
        if self._thread is None:  # closed: nothing left to write
            return
        done = threading.Event()
        self._queue.put_nowait(done)
        done.wait(timeout=10)

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put_nowait(None)
            thread.join(timeout=10)
        super().close()

    def _write(self) -> None:
        q, target = self._queue, self.target
        while True:
            batch = [q.get()]
            time.sleep(self.window_s)
            while not q.empty():
                batch.append(q.get_nowait())
            lines: list[str] = []
            for item in batch:
                if isinstance(item, logging.LogRecord) and item.levelno >= target.level and target.filter(item):
                    try:
                        lines.append(target.format(item))
                    except Exception:
                        target.handleError(item)
            if lines:
                try:
                    target.stream.write("\n".join(lines) + "\n")
                    target.flush()
                except Exception:
                    target.handleError(logging.makeLogRecord({"msg": "writing log lines failed"}))
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
            if None in batch:
                return


def configure_logging(
    level: int | str = logging.INFO,
    *,
    json_format: bool = True,
    env: Mapping[str, str] | None = None,
    stream: IO[str] | None = None,
    background: bool = False,
) -> logging.Handler:
    """Install (or replace) the broker's root handler; secrets found in ``env`` (default: os.environ) are redacted.
    ``background``: written by a thread of its own (a ``BackgroundHandler``), as the long-running commands do."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(h)
        h.close()
    writer = logging.StreamHandler(stream or sys.stderr)
    writer.setFormatter(
        JsonFormatter() if json_format else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    writer.addFilter(RedactingFilter(Redactor(secrets_in_env(os.environ if env is None else env))))
    handler: logging.Handler = BackgroundHandler(writer) if background else writer
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(level)
    # one line per outbound provider call is noise at INFO (and demo replays would read like live calls)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler


def configure_service_logging() -> logging.Handler:
    """JSON lines at ``BROKER_LOG_LEVEL`` (default INFO), written off the request path: what the long-running
    commands (serve, worker, the API processes) log."""
    return configure_logging(os.environ.get("BROKER_LOG_LEVEL", "INFO").upper(), json_format=True, background=True)


class RequestContextMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _VALID_ID.match(incoming) else random_uuid().hex
        token = request_id_var.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await next_app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            method = str(scope.get("method", ""))
            route = str(scope.get("path_template") or "(unrouted)")
            record_request(method, route, status, seconds)
            access_log.info(
                "%s %s %d",
                method,
                scope["path"],
                status,
                extra={
                    "method": method,
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "api_key": scope.get("state", {}).get("api_key_id"),
                    "client": client[0] if (client := scope.get("client")) else None,
                },
            )
            request_id_var.reset(token)
