"""``GET /v1/reports/showback``: JSON, or CSV with ``Accept: text/csv`` (or ``format=csv``)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import QueryParameter

from broker.api.deps import RuntimeDep
from broker.api.problems import GUARD_ERRORS, also_answers, problem_responses
from broker.reports.schemas import parse_bound, to_csv
from broker.reports.service import parse_group_by, showback


@get(
    "/v1/reports/showback",
    sync_to_thread=True,
    tags=["reports"],
    summary="GPU spend per team/project",
    responses=problem_responses(400, *GUARD_ERRORS),
    operation_class=also_answers("text/csv"),
)
def get_showback(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    group_by: Annotated[str | None, QueryParameter(description="comma-separated label names or columns")] = None,
    start: Annotated[str | None, QueryParameter(name="from", description="date or aware date-time")] = None,
    end: Annotated[str | None, QueryParameter(name="to", description="date or aware date-time (exclusive)")] = None,
    fmt: Annotated[str | None, QueryParameter(name="format", pattern="^(json|csv)$")] = None,
) -> Response[Any]:
    report = showback(
        runtime.engine,
        parse_group_by(group_by or "team,project"),
        parse_bound("from", start),
        parse_bound("to", end),
    )
    wants_csv = fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("accept", ""))
    if wants_csv:
        return Response(to_csv(report), media_type="text/csv")
    return Response(report)


ROUTES: list[Any] = [get_showback]
