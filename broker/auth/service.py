"""API keys: create, list, revoke, and authenticate a presented token.

A token reads ``gpb_<id>_<secret>``: ``id`` (8 hex characters) is public and names the key in logs and listings;
``secret`` carries 256 random bits. The database holds only SHA-256 of the whole token: with that much entropy a
plain hash cannot be reversed by guessing, and a stolen table grants nothing. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine

from broker.auth import repository
from broker.domain import ConfigError, utcnow

TOKEN_PREFIX = "gpb"
_TOKEN = re.compile(r"^gpb_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")


class Scope(StrEnum):
    PLACE = "place"  # ask for placements, send reports
    READ = "read"  # every GET: offers, providers, placements, metrics, schema
    ADMIN = "admin"  # key management and anything that changes configuration; implies the others


class KeyNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """A key as shown to people: never its secret or hash."""

    id: str
    name: str
    scopes: tuple[Scope, ...]
    created_at: datetime
    revoked_at: datetime | None
    rate_per_second: float | None
    burst: int | None

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": [s.value for s in self.scopes],
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "rate_per_second": self.rate_per_second,
            "burst": self.burst,
        }


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_token(token: str) -> str | None:
    """The key id of a well-formed token, else None (no database lookup for garbage)."""
    m = _TOKEN.match(token)
    return m.group(1) if m else None


def parse_scopes(values: Iterable[str]) -> tuple[Scope, ...]:
    out: list[Scope] = []
    for v in values:
        try:
            scope = Scope(v.strip().lower())
        except ValueError:
            raise ConfigError(f"unknown scope {v!r}: use {', '.join(s.value for s in Scope)}") from None
        if scope not in out:
            out.append(scope)
    if not out:
        raise ConfigError(f"a key needs at least one scope ({', '.join(s.value for s in Scope)})")
    return tuple(out)


def _info(row: dict[str, Any]) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row["id"],
        name=row["name"],
        scopes=tuple(Scope(s) for s in row["scopes"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        rate_per_second=row["rate_per_second"],
        burst=row["burst"],
    )


def create_key(
    engine: Engine,
    name: str,
    scopes: Iterable[str],
    *,
    rate_per_second: float | None = None,
    burst: int | None = None,
) -> tuple[ApiKeyInfo, str]:
    """Store a new key and return it with its token; the token is shown this once and never again."""
    name = name.strip()
    if not name or len(name) > 128:
        raise ConfigError("a key name must be 1 to 128 characters")
    if rate_per_second is not None and rate_per_second < 0:
        raise ConfigError("rate_per_second must be >= 0 (0: unlimited)")
    if burst is not None and burst < 1:
        raise ConfigError("burst must be >= 1")
    parsed = parse_scopes(scopes)
    with engine.begin() as conn:
        while True:  # 2^32 ids: a collision is rare but must not overwrite another key
            key_id = secrets.token_hex(4)
            if repository.get(conn, key_id) is None:
                break
        token = f"{TOKEN_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        row: dict[str, Any] = {
            "id": key_id,
            "name": name,
            "scopes": [s.value for s in parsed],
            "secret_hash": hash_token(token),
            "created_at": utcnow(),
            "revoked_at": None,
            "rate_per_second": rate_per_second,
            "burst": burst,
        }
        repository.insert(conn, row)
    return _info(row), token


def list_keys(engine: Engine, *, include_revoked: bool = False) -> list[ApiKeyInfo]:
    with engine.connect() as conn:
        return [_info(r) for r in repository.all_keys(conn, include_revoked=include_revoked)]


def revoke_key(engine: Engine, key_id: str) -> ApiKeyInfo:
    with engine.begin() as conn:
        if not repository.revoke(conn, key_id, utcnow()):
            row = repository.get(conn, key_id)
            if row is None:
                raise KeyNotFound(f"no API key with id {key_id!r}")
            raise KeyNotFound(f"API key {key_id!r} is already revoked")
        row = repository.get(conn, key_id)
        assert row is not None
        return _info(row)


@dataclass(frozen=True, slots=True)
class _Cached:
    secret_hash: str | None  # None: no live key with this id
    info: ApiKeyInfo | None
    fetched: float


class KeyStore:
    """Authenticates tokens, caching each key id's row for ``ttl_s`` seconds so a request costs no query.

    A revocation on another replica therefore takes effect within ``ttl_s``; on this replica at once.
    """

    MAX_ENTRIES = 10_000  # unknown ids are cached too; the cache is dropped whole rather than grow without bound

    def __init__(self, engine: Engine, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def _fresh(self, key_id: str) -> _Cached | None:
        with self._lock:
            hit = self._cache.get(key_id)
        return hit if hit is not None and self._clock() - hit.fetched < self.ttl_s else None

    def _load(self, key_id: str) -> _Cached:
        hit = self._fresh(key_id)
        if hit is not None:
            return hit
        with self.engine.connect() as conn:
            row = repository.get(conn, key_id)
        if row is None or row["revoked_at"] is not None:
            entry = _Cached(None, None, self._clock())
        else:
            entry = _Cached(str(row["secret_hash"]), _info(row), self._clock())
        with self._lock:
            if len(self._cache) >= self.MAX_ENTRIES:
                self._cache.clear()
            self._cache[key_id] = entry
        return entry

    @staticmethod
    def _verify(token: str, entry: _Cached) -> ApiKeyInfo | None:
        expected = entry.secret_hash or "0" * 64  # compare anyway: equal time for unknown ids
        if not hmac.compare_digest(hash_token(token), expected) or entry.info is None:
            return None
        return entry.info

    def authenticate(self, token: str) -> ApiKeyInfo | None:
        """The live key this token belongs to, or None (unknown, malformed, wrong secret, revoked). May query."""
        key_id = parse_token(token)
        return None if key_id is None else self._verify(token, self._load(key_id))

    def check_cached(self, token: str) -> tuple[bool, ApiKeyInfo | None]:
        """(decided, key) without touching the database: decided is False when the key id must be looked up."""
        key_id = parse_token(token)
        if key_id is None:
            return True, None
        hit = self._fresh(key_id)
        return (False, None) if hit is None else (True, self._verify(token, hit))

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)
