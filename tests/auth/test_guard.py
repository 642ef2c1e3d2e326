from __future__ import annotations

from typing import Any

import pytest

from broker.auth.guards import check_auth_mode, presented_token, required_scope
from broker.auth.service import Scope
from broker.domain import ConfigError
from tests.auth.conftest import bearer

PROBLEM = "application/problem+json"


def assert_problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["instance"]
    return body


@pytest.mark.parametrize(
    ("method", "path", "opt", "scope"),
    [
        ("GET", "/v1/offers", {}, Scope.READ),
        ("HEAD", "/v1/providers", {}, Scope.READ),
        ("POST", "/v1/place", {}, Scope.PLACE),
        ("POST", "/v1/reports", {}, Scope.PLACE),
        ("POST", "/v1/reports/{id:str}", {}, Scope.PLACE),
        ("POST", "/v1/placement", {}, Scope.ADMIN),  # a prefix of /v1/place is not /v1/place
        ("PUT", "/v1/place", {}, Scope.ADMIN),
        ("DELETE", "/v1/keys/{key_id:str}", {}, Scope.ADMIN),
        ("POST", "/v1/sources/reload", {}, Scope.ADMIN),
        ("GET", "/v1/keys", {"scope": "admin"}, Scope.ADMIN),
    ],
)
def test_scope_per_route(method: str, path: str, opt: dict[str, str], scope: Scope) -> None:
    assert required_scope(method, path, opt) is scope


def test_token_headers() -> None:
    assert presented_token({"authorization": "Bearer abc"}) == "abc"
    assert presented_token({"authorization": "bearer  abc "}) == "abc"
    assert presented_token({"x-api-key": "xyz"}) == "xyz"
    assert presented_token({"authorization": "Basic dTpw"}) is None
    assert presented_token({"authorization": "Bearer "}) is None
    assert presented_token({}) is None


def test_auth_off_only_on_loopback() -> None:
    assert check_auth_mode("0.0.0.0", True) is None
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        warning = check_auth_mode(host, False)
        assert warning is not None
        assert "OFF" in warning
    for host in ("0.0.0.0", "::", "10.0.0.5", "broker.internal"):
        with pytest.raises(ConfigError, match="loopback"):
            check_auth_mode(host, False)


def test_every_endpoint_but_health_needs_a_key(client: Any) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    for path in ("/v1/offers", "/v1/providers", "/metrics", "/schema/openapi.json", "/v1/keys"):
        body = assert_problem(client.get(path), 401)
        assert body["title"] == "Unauthorized"
    r = client.get("/v1/offers")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_problem(client.post("/v1/reports/auth-probe"), 401)


def test_bad_keys_are_401(client: Any, keys: dict[str, str]) -> None:
    good = keys["read"]
    for token in (good[:-1], "gpb_00000000_" + good.split("_", 2)[2], "hunter2", ""):
        assert_problem(client.get("/v1/offers", headers=bearer(token)), 401)
    assert_problem(client.get("/v1/offers", headers={"Authorization": f"Basic {good}"}), 401)


def test_both_headers_work(client: Any, keys: dict[str, str]) -> None:
    assert client.get("/v1/offers", headers=bearer(keys["read"])).status_code == 200
    assert client.get("/v1/offers", headers={"X-API-Key": keys["read"]}).status_code == 200


def test_scopes_per_route_over_http(client: Any, keys: dict[str, str]) -> None:
    def status(method: str, path: str, key: str, **kw: Any) -> int:
        r = client.request(method, path, headers=bearer(keys[key]), **kw)
        if r.status_code == 403:
            assert_problem(r, 403)
        return int(r.status_code)

    assert status("GET", "/v1/offers", "read") == 200
    assert status("GET", "/v1/offers", "place") == 403
    assert status("POST", "/v1/reports/auth-probe", "place") == 200
    assert status("POST", "/v1/reports/auth-probe", "read") == 403
    assert status("GET", "/metrics", "read") == 200
    assert status("GET", "/v1/keys", "both") == 403  # a listing, but key management is admin
    assert status("POST", "/v1/keys", "both", json={"name": "x", "scopes": ["read"]}) == 403
    assert status("GET", "/v1/keys", "admin") == 200
    assert status("POST", "/v1/reports/auth-probe", "admin") == 200
    r = client.get("/v1/keys", headers=bearer(keys["read"]))
    assert r.json()["required_scope"] == "admin"


def test_key_management_api(client: Any, keys: dict[str, str]) -> None:
    admin = bearer(keys["admin"])
    r = client.post("/v1/keys", headers=admin, json={"name": "ci", "scopes": ["read"]})
    assert r.status_code == 201, r.text
    created = r.json()
    token = created["token"]
    assert token.startswith(f"gpb_{created['id']}_")
    assert client.get("/v1/offers", headers=bearer(token)).status_code == 200
    listed = client.get("/v1/keys", headers=admin).json()["items"]
    assert created["id"] in {k["id"] for k in listed}
    assert token not in str(listed)
    assert all("token" not in k and "secret_hash" not in k for k in listed)
    assert client.delete(f"/v1/keys/{created['id']}", headers=admin).status_code == 200
    assert_problem(client.get("/v1/offers", headers=bearer(token)), 401)  # this replica forgets it at once
    assert_problem(client.delete(f"/v1/keys/{created['id']}", headers=admin), 404)
    revoked = client.get("/v1/keys", headers=admin, params={"include_revoked": "true"}).json()["items"]
    assert any(k["id"] == created["id"] and k["revoked_at"] for k in revoked)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": ["write"]},
        {"name": "x", "scopes": []},
        {"name": "", "scopes": ["read"]},
        {"name": "x", "scopes": ["read"], "rate_per_second": -1},
        {"name": "x", "scopes": ["read"], "owner": "me"},
    ],
)
def test_key_creation_is_validated(client: Any, keys: dict[str, str], body: dict[str, Any]) -> None:
    problem = assert_problem(client.post("/v1/keys", headers=bearer(keys["admin"]), json=body), 400)
    assert problem["title"] == "Invalid request"


def test_auth_off_serves_without_keys(make_client: Any) -> None:
    client = make_client(auth=False)
    assert client.get("/v1/offers").status_code == 200
    assert client.post("/v1/reports/auth-probe").status_code == 200
