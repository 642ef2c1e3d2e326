from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar import post
from litestar.testing import TestClient

from broker.auth import service
from broker.runtime import Runtime
from tests.auth.app_helper import secured_app


@post("/v1/reports/auth-probe", sync_to_thread=False, status_code=200)
def report_probe() -> dict[str, str]:
    """Test-only route: a POST under /v1/reports, which needs the place scope."""
    return {"ok": "yes"}


@pytest.fixture
def make_client(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Any]]:
    clients: list[Any] = []

    def make(auth: bool = True) -> Any:
        client = TestClient(app=secured_app(runtime, monkeypatch, extra=[report_probe], auth=auth))
        clients.append(client.__enter__())
        return clients[-1]

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[[], Any]) -> Any:
    return make_client()


@pytest.fixture
def keys(runtime: Runtime) -> dict[str, str]:
    """One token per scope set, plus an unlimited admin."""
    out: dict[str, str] = {}
    for name, scopes in {"read": ["read"], "place": ["place"], "both": ["place", "read"], "admin": ["admin"]}.items():
        _, out[name] = service.create_key(runtime.engine, name, scopes, rate_per_second=0)
    return out


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
