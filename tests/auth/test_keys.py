from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import Engine, select

from broker.auth import service
from broker.auth.models import ApiKey
from broker.auth.service import KeyNotFound, KeyStore, Scope
from broker.domain import ConfigError
from broker.store.models import table


def test_token_has_visible_id_and_only_its_hash_is_stored(engine: Engine) -> None:
    info, token = service.create_key(engine, "slurm-prod", ["place", "read"])
    assert token.startswith(f"gpb_{info.id}_")
    assert service.parse_token(token) == info.id
    assert info.scopes == (Scope.PLACE, Scope.READ)
    with engine.connect() as conn:
        row = conn.execute(select(table(ApiKey))).mappings().one()
    assert row["secret_hash"] == hashlib.sha256(token.encode()).hexdigest()
    secret = token.split("_", 2)[2]
    assert len(secret) >= 43  # 256 random bits
    assert all(secret not in str(v) for v in row.values())


def test_two_keys_differ(engine: Engine) -> None:
    (a, ta), (b, tb) = service.create_key(engine, "a", ["read"]), service.create_key(engine, "b", ["read"])
    assert a.id != b.id
    assert ta != tb


def test_authenticate_accepts_only_the_exact_live_token(engine: Engine) -> None:
    info, token = service.create_key(engine, "k", ["read"])
    store = KeyStore(engine)
    assert store.authenticate(token) == info
    key_id, secret = token.split("_")[1], token.split("_", 2)[2]
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert store.authenticate(f"gpb_{key_id}_{flipped}") is None
    assert store.authenticate("gpb_00000000_" + secret) is None
    assert store.authenticate(token + "x") is None
    assert store.authenticate("not a token") is None
    assert store.check_cached("garbage") == (True, None)


def test_revocation_reaches_other_replicas_after_the_cache_ttl(engine: Engine) -> None:
    _, token = service.create_key(engine, "k", ["read"])
    now = [0.0]
    other_replica = KeyStore(engine, ttl_s=5.0, clock=lambda: now[0])
    assert other_replica.authenticate(token) is not None
    revoked = service.revoke_key(engine, service.parse_token(token) or "")
    assert revoked.revoked_at is not None
    now[0] = 4.0
    assert other_replica.check_cached(token)[1] is not None  # still cached: at most ttl_s late
    now[0] = 5.5
    assert other_replica.check_cached(token) == (False, None)
    assert other_replica.authenticate(token) is None


def test_list_hides_revoked_unless_asked_and_revoke_errors(engine: Engine) -> None:
    a, _ = service.create_key(engine, "a", ["read"])
    b, _ = service.create_key(engine, "b", ["admin"], rate_per_second=0, burst=5)
    service.revoke_key(engine, a.id)
    assert [k.id for k in service.list_keys(engine)] == [b.id]
    assert {k.id for k in service.list_keys(engine, include_revoked=True)} == {a.id, b.id}
    with pytest.raises(KeyNotFound, match="already revoked"):
        service.revoke_key(engine, a.id)
    with pytest.raises(KeyNotFound, match="no API key"):
        service.revoke_key(engine, "ffffffff")
    public = b.public()
    assert public["rate_per_second"] == 0
    assert public["burst"] == 5
    assert "token" not in public
    assert "secret_hash" not in public


@pytest.mark.parametrize(
    ("name", "scopes", "message"),
    [("k", ["write"], "unknown scope"), ("k", [], "at least one scope"), ("", ["read"], "1 to 128")],
)
def test_bad_key_requests(engine: Engine, name: str, scopes: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        service.create_key(engine, name, scopes)


def test_admin_implies_every_scope(engine: Engine) -> None:
    admin, _ = service.create_key(engine, "root", ["admin"])
    reader, _ = service.create_key(engine, "r", ["read"])
    assert all(admin.allows(s) for s in Scope)
    assert reader.allows(Scope.READ)
    assert not reader.allows(Scope.PLACE)
    assert not reader.allows(Scope.ADMIN)
