"""The API-key guard: authentication, scope per route, per-key rate limit. Failures are RFC 9457 problems.

Installed app-wide (``guards=[api_key_guard(runtime)]``). Guards run inside each route's exception handler, so a
401/403/429 passes through the middlewares (request id, metrics) like any other response.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from broker.api.problems import Problem
from broker.auth.ratelimit import RateLimiter
from broker.auth.service import ApiKeyInfo, KeyStore, Scope
from broker.domain import ConfigError
from broker.runtime import Runtime

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
# POSTs a scheduler makes; every other mutating request needs admin
PLACE_PATHS = ("/v1/place", "/v1/reports")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_RATE_PER_SECOND = 50.0
DEFAULT_BURST = 100
STATE_KEY_ID = "api_key_id"  # scope["state"] entry the access log reads


def required_scope(method: str, path: str, opt: Mapping[str, Any]) -> Scope:
    """The scope a route needs: the handler's ``opt={"scope": ...}`` if set, else by method and path."""
    explicit = opt.get("scope")
    if explicit is not None:
        return Scope(explicit)
    if method.upper() in READ_METHODS:
        return Scope.READ
    if method.upper() == "POST" and any(path == p or path.startswith(p + "/") for p in PLACE_PATHS):
        return Scope.PLACE
    return Scope.ADMIN


def presented_token(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth:
        kind, _, value = auth.partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def check_auth_mode(host: str, auth_enabled: bool) -> str | None:
    """For ``broker serve``: None with auth on; a warning to print when auth is off on loopback; ConfigError when
    auth is off on any other address (the API would be open to the network)."""
    if auth_enabled:
        return None
    if not is_loopback(host):
        raise ConfigError(
            f"server.auth is off but the server would listen on {host}: authentication may only be turned off "
            "when serving on loopback (127.0.0.1, ::1, localhost)"
        )
    return f"WARNING: authentication is OFF: every request is accepted without an API key (loopback {host} only)"


@dataclass(frozen=True, slots=True)
class AuthConfig:
    enabled: bool = True
    rate_per_second: float = DEFAULT_RATE_PER_SECOND
    burst: int = DEFAULT_BURST
    public_paths: Collection[str] = PUBLIC_PATHS
    cache_seconds: float = 5.0

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> AuthConfig:
        server = runtime.settings.server
        # getattr: the rate settings are optional in config/broker.toml
        return cls(
            enabled=bool(server.auth),
            rate_per_second=server.rate_limit_per_second,
            burst=server.rate_limit_burst,
        )


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401, "Unauthorized", detail, slug="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="broker"'}
    )


class ApiKeyGuard:
    def __init__(self, store: KeyStore, config: AuthConfig, limiter: RateLimiter | None = None) -> None:
        self.store = store
        self.config = config
        self.limiter = limiter or RateLimiter()

    async def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        scope = connection.scope
        if scope["path"] in self.config.public_paths or handler.opt.get("public"):
            return  # liveness, readiness, and the dashboard's page and assets (its API calls still need a key)
        if scope.get("method") == "OPTIONS":  # CORS preflight: browsers send no credentials on it; it reveals only
            return  # the allowed methods, and the real request that follows is checked

        key: ApiKeyInfo | None = None
        if self.config.enabled:
            token = presented_token(connection.headers)
            if token is None:
                raise _unauthorized("this endpoint needs an API key: send 'Authorization: Bearer <key>' or 'X-API-Key'")
            decided, key = self.store.check_cached(token)
            if not decided:  # a cache miss queries the database: off the event loop
                key = await anyio.to_thread.run_sync(self.store.authenticate, token)
            if key is None:
                raise _unauthorized("the API key is unknown, malformed or revoked")
            scope.setdefault("state", {})[STATE_KEY_ID] = key.id
        self._limit(connection, key)
        if key is not None:
            path = str(scope.get("path_template") or scope["path"])
            needed = required_scope(str(scope.get("method", "GET")), path, handler.opt)
            if not key.allows(needed):
                raise Problem(
                    403,
                    "Forbidden",
                    f"API key {key.id} lacks the '{needed.value}' scope this endpoint needs",
                    slug="forbidden",
                    extensions={"required_scope": needed.value},
                )

    def _limit(self, connection: ASGIConnection[Any, Any, Any, Any], key: ApiKeyInfo | None) -> None:
        if key is not None:
            name = f"key:{key.id}"
            rate = self.config.rate_per_second if key.rate_per_second is None else key.rate_per_second
            burst = key.burst or max(self.config.burst, 1)
        else:  # auth off (loopback only): one bucket per client address
            name = f"client:{connection.client.host if connection.client else '?'}"
            rate, burst = self.config.rate_per_second, self.config.burst
        wait = self.limiter.take(name, rate, burst)
        if wait > 0:
            raise Problem(
                429,
                "Too many requests",
                f"rate limit of {rate:g} requests/s (burst {burst}) exceeded; retry after the Retry-After seconds",
                slug="too-many-requests",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )


def api_key_guard(runtime: Runtime, config: AuthConfig | None = None) -> ApiKeyGuard:
    """The guard for ``Litestar(guards=[...])``; its KeyStore is kept in ``runtime.extras["auth"]`` so the key
    endpoints can forget a revoked key at once."""
    config = config or AuthConfig.from_runtime(runtime)
    guard = ApiKeyGuard(KeyStore(runtime.engine, ttl_s=config.cache_seconds), config)
    runtime.extras["auth"] = guard
    return guard
