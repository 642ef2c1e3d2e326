"""Regressions for what the fuzzer found, and checks of the schema parts the fuzz run (auth off) cannot reach."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from litestar.testing import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from broker.api.app import create_app
from broker.placement.schemas import PLACE_EXAMPLE
from broker.runtime import Runtime
from tests.fuzz.test_schemathesis import join_history_rollup, openapi_document, seed

Client = TestClient[Any]
PUBLIC = {"/healthz", "/readyz"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def client(runtime: Runtime) -> Iterator[Client]:
    seed(runtime)
    with TestClient(app=create_app(runtime)) as c:
        yield c
    join_history_rollup()


def job(**work: Any) -> dict[str, Any]:
    return PLACE_EXAMPLE | {"work": PLACE_EXAMPLE["work"] | work}


def test_a_vanishing_job_length_is_refused_not_a_server_error(client: Client) -> None:
    # found by the fuzzer: 5e-324 h passed "> 0", then underflowed to 0 h on a faster GPU (ZeroDivisionError, 500)
    r = client.post("/v1/place", json=job(hours=5e-324))
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in r.json()["errors"]] == ["work.hours"]


def test_a_one_second_job_is_placed(client: Client) -> None:
    r = client.post("/v1/place", json=job(hours=1 / 3600))
    assert r.status_code == 200, r.text
    assert r.json()["choice"]["work_hours"] > 0


def test_the_example_job_in_the_schema_is_accepted(client: Client) -> None:
    r = client.post("/v1/place", json=PLACE_EXAMPLE)
    assert r.status_code == 200, r.text


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield method, path, op


def test_error_answers_are_documented_as_problem_details() -> None:
    document = openapi_document()
    for method, path, op in operations(document):
        responses = op["responses"]
        label = f"{method.upper()} {path}"
        if path not in PUBLIC:  # auth is on in production: every other route may refuse a key, or be rate limited
            assert {"401", "403", "429", "503"} <= set(responses), label
        for status, response in responses.items():
            if int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (label, status)
                assert response["content"]["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/ProblemDetails"
                }, (label, status)
    assert set(document["components"]["schemas"]["ProblemDetails"]["required"]) == {
        "type", "title", "status", "detail", "instance"
    }  # fmt: skip


def test_csv_and_xlsx_answers_are_documented() -> None:
    paths = openapi_document()["paths"]
    exports = paths["/v1/exports/commitments"]["get"]["responses"]["200"]["content"]
    showback = paths["/v1/reports/showback"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"} <= set(
        exports
    )
    assert {"application/json", "text/csv"} <= set(showback)


@pytest.fixture
def guarded(settings: Any, engine: Any, catalog: Any) -> Iterator[Client]:
    on = dataclasses.replace(settings, server=settings.server.model_copy(update={"auth": True}))
    runtime = Runtime(settings=on, engine=engine, catalog=catalog, env={})
    with TestClient(app=create_app(runtime)) as c:
        yield c
    join_history_rollup()


def test_refusals_without_a_key_match_the_schema(guarded: Client) -> None:
    """With auth on (production) every route but liveness and readiness answers a documented 401 problem."""
    schema = schemathesis.openapi.from_dict(openapi_document())
    seen = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        op = result.ok()
        if op.path in PUBLIC:
            continue
        case = op.Case(
            path_parameters={p.name: "x" for p in op.path_parameters},
            body={} if op.body else NOT_SET,
            media_type="application/json" if op.body else None,
        )
        kwargs = case.as_transport_kwargs(base_url="http://testserver.local")
        r = guarded.request(kwargs["method"], kwargs["url"], headers=kwargs.get("headers"), json=kwargs.get("json"))
        assert r.status_code == 401, (op.label, r.text)
        case.validate_response(r, checks=CHECKS)
        seen += 1
    assert seen >= 10
