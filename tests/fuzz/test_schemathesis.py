"""Property-based API fuzzing: schemathesis drives every operation of the broker's own OpenAPI schema.

Each operation is one test: schemathesis generates valid and invalid requests from the schema (boundary values,
then random ones) and sends them in-process through its ASGI transport to an app built on the test database. A
response passes when it is not a 5xx, its status code is documented for the operation, and its media type and body
match what the schema declares for that status.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from broker.api.app import create_app
from broker.domain import utcnow
from broker.gpus import GpuCatalog
from broker.runtime import Runtime
from broker.settings import load_settings
from broker.store.db import make_engine
from broker.store.ingest import apply_snapshot
from tests.factories import obs, snap

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# per operation, for the random phase (the boundary-value phase adds its own); a deeper run: BROKER_FUZZ_EXAMPLES=500
EXAMPLES_PER_OPERATION = int(os.environ.get("BROKER_FUZZ_EXAMPLES", "30"))


class AppUnderTest:
    """The ASGI app schemathesis sends to: forwards requests to the app of the running test.

    The schema is needed at collection time (one test per operation), the app only inside a test with its
    database; the lifespan is run by the test's TestClient, so the transport is told there is none.
    """

    target: Litestar | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        assert self.target is not None, "requests are sent only from inside a test"
        await self.target(scope, receive, send)


APP = AppUnderTest()


def openapi_document() -> dict[str, Any]:
    """The schema as the app serves it at /schema/openapi.json; building it needs no database connection."""
    loaded = load_settings({"BROKER_DATABASE_URL": "sqlite://"})
    settings_ = dataclasses.replace(loaded, server=loaded.server.model_copy(update={"auth": False}))
    runtime = Runtime(settings=settings_, engine=make_engine("sqlite://"), catalog=GpuCatalog.load(), env={})
    document: dict[str, Any] = create_app(runtime).openapi_schema.to_schema()
    return document


schema = schemathesis.openapi.from_dict(openapi_document())
schema.app = APP
schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION, deterministic=True)


def seed(runtime: Runtime) -> None:
    offers = [
        obs("p5.48xlarge", "98.32", gpu="H100-SXM", gpus=8),
        obs("p5.48xlarge", "39.10", gpu="H100-SXM", gpus=8, purchase="spot", zone="us-east-1a"),
        obs("p4de.24xlarge", "40.97", gpu="A100-80GB", gpus=8),
        obs("g6.xlarge", "0.805", gpu="L4", gpus=1),
        obs("gpu_8x_h100_sxm5", "23.92", provider="lambda", gpu="H100-SXM", gpus=8),
        obs("gpu_1x_a100_sxm4", "1.29", provider="lambda", region="us-west-1", gpu="A100-40GB", gpus=1),
    ]
    taken = snap(offers, at=utcnow() - timedelta(minutes=1), source="snapshots")
    apply_snapshot(runtime.engine, taken, runtime.catalog)


@pytest.fixture
def settings(settings: Any) -> Any:
    """The suite's settings (auth off) without the per-client rate limit: a few hundred requests per operation."""
    return dataclasses.replace(settings, server=settings.server.model_copy(update={"rate_limit_per_second": 0}))


def join_history_rollup() -> None:
    """The lifespan starts the history summary refresh as a daemon thread nobody joins: wait for it, so it cannot
    write while the next test empties the tables (a deadlock on PostgreSQL)."""
    for thread in threading.enumerate():
        if thread.name == "history-rollup":
            thread.join(timeout=30)


@pytest.fixture
def live_app(runtime: Runtime) -> Iterator[Litestar]:
    seed(runtime)
    app = create_app(runtime)
    with TestClient(app=app):  # runs the lifespan: offer index loaded, decision writer started, then stopped
        APP.target = app
        try:
            yield app
        finally:
            APP.target = None
    join_history_rollup()


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,  # the same requests on every run: CI failures reproduce
    database=None,
    # the app fixture is per operation, not per example: state (created keys, decisions) carries over, on purpose
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
def test_operation_conforms_to_schema(case: Any, live_app: Litestar) -> None:
    case.call_and_validate(checks=CHECKS)
