from __future__ import annotations

from typing import Any

from broker.auth import service
from broker.auth.ratelimit import RateLimiter
from broker.runtime import Runtime
from tests.auth.app_helper import with_server
from tests.auth.conftest import bearer
from tests.auth.test_guard import assert_problem


def test_token_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.take("k", rate=2.0, burst=3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k", rate=2.0, burst=3) == 0.5  # empty: the next token comes in 1/rate s
    assert limiter.take("other", rate=2.0, burst=3) == 0.0  # buckets are per key
    now[0] += 0.5
    assert limiter.take("k", rate=2.0, burst=3) == 0.0
    assert limiter.take("k", rate=2.0, burst=3) > 0
    now[0] += 60  # refills up to burst, not beyond
    assert [limiter.take("k", rate=2.0, burst=3) for _ in range(4)][-1] > 0
    assert all(limiter.take("free", rate=0, burst=1) == 0.0 for _ in range(1000))


def test_per_key_limit_is_a_429_problem_with_retry_after(runtime: Runtime, client: Any) -> None:
    _, slow = service.create_key(runtime.engine, "slow", ["read"], rate_per_second=0.01, burst=2)
    _, other = service.create_key(runtime.engine, "other", ["read"])
    assert [client.get("/v1/offers", headers=bearer(slow)).status_code for _ in range(2)] == [200, 200]
    r = client.get("/v1/offers", headers=bearer(slow))
    body = assert_problem(r, 429)
    assert body["title"] == "Too many requests"
    assert 1 <= int(r.headers["retry-after"]) <= 100
    assert client.get("/v1/offers", headers=bearer(other)).status_code == 200  # another key is not limited


def test_server_default_limit_applies_to_keys_without_their_own(runtime: Runtime, make_client: Any) -> None:
    from broker.auth import guards

    _, token = service.create_key(runtime.engine, "k", ["read"])
    client = make_client()
    guard = runtime.extras["auth"]
    assert isinstance(guard, guards.ApiKeyGuard)
    guard.limiter = RateLimiter(clock=lambda: 0.0)  # time stands still: no refill
    statuses = [client.get("/v1/offers", headers=bearer(token)).status_code for _ in range(guards.DEFAULT_BURST + 2)]
    assert statuses == [200] * guards.DEFAULT_BURST + [429, 429]


def test_too_large_body_is_a_413_problem(runtime: Runtime, make_client: Any, keys: dict[str, str]) -> None:
    with_server(runtime, max_body_bytes=256)
    client = make_client()
    big = {"name": "x" * 100, "scopes": ["read"], "pad": "y" * 1000}
    body = assert_problem(client.post("/v1/keys", headers=bearer(keys["admin"]), json=big), 413)
    assert body["title"] == "Request body too large"
    small = client.post("/v1/keys", headers=bearer(keys["admin"]), json={"name": "ok", "scopes": ["read"]})
    assert small.status_code == 201


PREFLIGHT = {"Origin": "https://ui.example", "Access-Control-Request-Method": "GET"}


def test_cors_is_off_unless_configured(client: Any, keys: dict[str, str]) -> None:
    r = client.get("/v1/offers", headers={**bearer(keys["read"]), "Origin": "https://ui.example"})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    assert "access-control-allow-origin" not in client.options("/v1/offers", headers=PREFLIGHT).headers


def test_cors_allows_only_configured_origins(runtime: Runtime, make_client: Any, keys: dict[str, str]) -> None:
    with_server(runtime, cors_origins=["https://ui.example"])
    client = make_client()
    pre = client.options("/v1/offers", headers=PREFLIGHT)  # preflights carry no key
    assert pre.status_code in (200, 204)
    assert pre.headers["access-control-allow-origin"] == "https://ui.example"
    r = client.get("/v1/offers", headers={**bearer(keys["read"]), "Origin": "https://ui.example"})
    assert r.headers["access-control-allow-origin"] == "https://ui.example"
    evil = client.get("/v1/offers", headers={**bearer(keys["read"]), "Origin": "https://evil.example"})
    assert evil.headers.get("access-control-allow-origin") != "https://evil.example"
    assert_problem(client.get("/v1/offers", headers={"Origin": "https://ui.example"}), 401)  # CORS is not auth
