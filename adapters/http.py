"""HTTP plumbing shared by the plain-HTTP sources: bounded retries, Retry-After, actionable errors.

Every failure ends in a ``SourceError`` whose message says what happened and what to do about it; the
poll is then recorded as failed and the prices stored earlier stay as they were.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypedDict, Unpack

import httpx

from adapters.base import DEMO_PAYLOADS, SourceContext
from broker.domain import SourceError

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


def replay_transport(kind: str, routes: Mapping[str, str], root: Path = DEMO_PAYLOADS) -> httpx.MockTransport:
    """Serve recorded payloads for demo mode: ``routes`` maps a URL path (optionally with its query string)
    to a file under ``root/kind``. An unknown URL is a 404, as a live API would answer."""

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        query = request.url.query.decode()
        name = routes.get(f"{path}?{query}") if query else None
        name = name or routes.get(path)
        if name is None:
            return httpx.Response(404, json={"error": f"no recorded payload for {path}"})
        return httpx.Response(
            200, content=(root / kind / name).read_bytes(), headers={"content-type": "application/json"}
        )

    return httpx.MockTransport(handle)


def client_for(ctx: SourceContext, kind: str, demo_routes: Mapping[str, str] | None = None) -> httpx.Client:
    """The client a source should use: the injected one (tests), a replay of recorded payloads (demo), or live."""
    if ctx.http is not None:
        return ctx.http
    if ctx.demo:
        return httpx.Client(transport=replay_transport(kind, demo_routes or {}))
    return httpx.Client(timeout=httpx.Timeout(min(30.0, max(ctx.remaining_s(), 1.0))), follow_redirects=True)


def _retry_after(response: httpx.Response, fallback: float) -> float:
    value = response.headers.get("retry-after")
    if value is None:
        return fallback
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:  # an HTTP date: do not parse, back off by the fallback
        return fallback


def get_bytes(
    ctx: SourceContext,
    client: httpx.Client,
    url: str,
    *,
    what: str,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    max_attempts: int = 4,
    sleep: Callable[[float], None] = time.sleep,
    auth_hint: str = "check the credentials",
    error_hint: str = "",
) -> bytes:
    """GET ``url`` and return the body, retrying transient failures (timeouts, connection errors, 429 with
    its Retry-After, 5xx) with exponential backoff inside the poll's time budget. ``what`` names the call in
    error messages ("Azure retail prices page 3"); ``error_hint`` is appended to a non-transient HTTP error."""
    delay = 1.0
    for attempt in range(1, max_attempts + 1):
        try:
            response = client.get(url, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            failure = f"{what}: timed out ({type(exc).__name__})"
        except httpx.TransportError as exc:
            failure = f"{what}: cannot connect ({exc}); check the network or the configured URL"
        else:
            if response.status_code in (401, 403):
                raise SourceError(f"{what}: credentials rejected (HTTP {response.status_code}); {auth_hint}")
            if response.status_code not in TRANSIENT_STATUS:
                if response.is_error:
                    body = response.text[:200].strip()
                    message = f"{what}: HTTP {response.status_code} for {url}" + (f": {body}" if body else "")
                    raise SourceError(message + (f"; {error_hint}" if error_hint else ""))
                return response.content
            failure = f"{what}: HTTP {response.status_code}"
            if response.status_code == 429:
                failure += " (rate limited)"
                delay = _retry_after(response, delay)
        if attempt == max_attempts or ctx.remaining_s() <= delay:
            raise SourceError(f"{failure}; gave up after {attempt} attempt(s)")
        sleep(delay)
        delay = min(delay * 2, MAX_RETRY_AFTER_S)
    raise AssertionError("unreachable")


class GetOptions(TypedDict, total=False):
    """The optional arguments of ``get_bytes``, passed through by ``get_json``."""

    params: Mapping[str, str] | None
    headers: Mapping[str, str] | None
    max_attempts: int
    sleep: Callable[[float], None]
    auth_hint: str
    error_hint: str


def get_json(ctx: SourceContext, client: httpx.Client, url: str, *, what: str, **options: Unpack[GetOptions]) -> Any:
    """``get_bytes`` decoded as JSON; a body that is not JSON is a ``SourceError`` (not retried)."""
    body = get_bytes(ctx, client, url, what=what, **options)
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{what}: response is not valid JSON ({exc})") from None
