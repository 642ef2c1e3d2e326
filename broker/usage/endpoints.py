"""``POST /v1/placements/{placement_id}/report``: what a placed job really ran."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from pydantic import ValidationError

from broker.api.deps import RuntimeDep
from broker.api.problems import GUARD_ERRORS, Problem, invalid_request, problem_responses
from broker.usage.schemas import UsageReport, record_out
from broker.usage.service import ReportConflict, UnknownPlacement, record_report

PENDING_WAIT_S = 3.0


def _await_decision(request: Request[Any, Any, Any], placement_id: str) -> None:
    """Placement decisions are stored write-behind: a report may arrive before its placement row is written."""
    log = request.app.state.get("decisions")
    pending = getattr(log, "pending", None)
    if pending is None:
        return
    deadline = time.monotonic() + PENDING_WAIT_S
    while pending(placement_id) is not None and time.monotonic() < deadline:
        time.sleep(0.05)


@post(
    "/v1/placements/{placement_id:str}/report",
    sync_to_thread=True,
    tags=["usage"],
    summary="Report a run of a placement (idempotent per report_id)",
    status_code=201,
    # 200: the same report again (idempotent replay)
    responses={
        200: ResponseSpec(dict[str, Any], generate_examples=False, description="The report was already recorded"),
        **problem_responses(400, 409, 413, *GUARD_ERRORS),
    },
)
def report_usage(
    request: Request[Any, Any, Any], placement_id: FromPath[str], data: JSONBody[dict[str, Any]], runtime: RuntimeDep
) -> Response[dict[str, Any]]:
    _await_decision(request, placement_id)
    try:
        report = UsageReport.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc, "usage report") from None
    try:
        record, created = record_report(runtime.engine, placement_id, report)
    except UnknownPlacement as exc:
        raise Problem(400, "Unknown placement", str(exc), slug="unknown-placement") from None
    except ReportConflict as exc:
        raise Problem(409, "Report conflict", str(exc), slug="report-conflict") from None
    return Response(record_out(record), status_code=201 if created else 200)


ROUTES: list[Any] = [report_usage]
