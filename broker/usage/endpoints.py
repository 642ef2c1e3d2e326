"""``POST /v1/placements/{placement_id}/report``: what a placed job really ran."""

from __future__ import annotations

from typing import Any

from litestar import Response, post
from pydantic import ValidationError

from broker.api.deps import RuntimeDep
from broker.api.problems import Problem, invalid_request
from broker.usage.schemas import UsageReport, record_out
from broker.usage.service import ReportConflict, UnknownPlacement, record_report


@post(
    "/v1/placements/{placement_id:str}/report",
    sync_to_thread=True,
    tags=["usage"],
    summary="Report a run of a placement (idempotent per report_id)",
    status_code=201,
)
def report_usage(placement_id: str, data: dict[str, Any], runtime: RuntimeDep) -> Response[dict[str, Any]]:
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
