"""Builds the API app with this package's pieces wired in the way broker/api/app.py is to wire them:
``guards=[api_key_guard(runtime)]``, ``middleware=[RequestContextMiddleware()]`` and the key and metrics ROUTES.
Once create_app wires them itself, create_app's app is used as it is."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from litestar import Litestar

import broker.api.app as app_module
from broker.auth.endpoints import ROUTES as KEY_ROUTES
from broker.auth.guards import api_key_guard
from broker.observability.logging import RequestContextMiddleware
from broker.observability.metrics import ROUTES as METRIC_ROUTES
from broker.runtime import Runtime


def with_server(runtime: Runtime, **changes: Any) -> None:
    """Change server settings (settings are frozen: replace them)."""
    server = runtime.settings.server.model_copy(update=changes)
    runtime.settings = dataclasses.replace(runtime.settings, server=server)


def secured_app(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, extra: Sequence[Any] = (), *, auth: bool = True
) -> Litestar:
    """Auth is set explicitly (config/broker.toml has it on; a test fixture elsewhere may turn it off)."""
    with_server(runtime, auth=auth)
    plain = app_module.create_app(runtime)
    if {"/metrics", "/v1/keys"} <= {r.path for r in plain.routes}:
        app = plain
    else:
        def wired(route_handlers: Sequence[Any], **kwargs: Any) -> Litestar:
            return Litestar(
                route_handlers=[*route_handlers, *KEY_ROUTES, *METRIC_ROUTES],
                guards=[api_key_guard(runtime)],
                middleware=[RequestContextMiddleware()],
                **kwargs,
            )

        monkeypatch.setattr(app_module, "Litestar", wired)
        app = app_module.create_app(runtime)
    for handler in extra:
        app.register(handler)
    return app
