"""``GET /v1/exports/commitments``: the negotiation export as JSON, CSV, XLSX, or FOCUS usage CSV."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from litestar import Response, get
from litestar.params import QueryParameter

from broker.api.deps import RuntimeDep
from broker.api.problems import GUARD_ERRORS, also_answers, problem_responses
from broker.exports.focus_export import focus_csv
from broker.exports.render import to_csv, to_xlsx
from broker.exports.service import ExportParams, commitment_export
from broker.runtime import Runtime

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ExportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    XLSX = "xlsx"
    FOCUS = "focus"


def render(runtime: Runtime, params: ExportParams, fmt: ExportFormat) -> tuple[bytes | str | dict[str, Any], str]:
    """The export body and its media type (shared by the endpoint and the CLI)."""
    if fmt is ExportFormat.FOCUS:
        return focus_csv(runtime.engine, runtime.catalog, params), "text/csv"
    export = commitment_export(runtime.engine, runtime.index.current, runtime.catalog, params)
    if fmt is ExportFormat.CSV:
        return to_csv(export), "text/csv"
    if fmt is ExportFormat.XLSX:
        return to_xlsx(export), XLSX
    return export, "application/json"


@get(
    "/v1/exports/commitments",
    sync_to_thread=True,
    tags=["exports"],
    summary="Commitment-negotiation evidence: usage profile, recommended levels per term, market prices",
    responses=problem_responses(400, *GUARD_ERRORS),
    operation_class=also_answers("text/csv", XLSX),
)
def export_commitments(
    runtime: RuntimeDep,
    lookback_days: Annotated[int, QueryParameter(ge=1, le=1095)] = 90,
    gpu: Annotated[str | None, QueryParameter(description="GPU model id or family")] = None,
    provider: Annotated[str | None, QueryParameter()] = None,
    format: Annotated[ExportFormat, QueryParameter()] = ExportFormat.JSON,
) -> Response[Any]:
    params = ExportParams(lookback_days=lookback_days, gpu=gpu, provider=provider)
    body, media = render(runtime, params, format)
    headers = {}
    if format is not ExportFormat.JSON:
        ext = {"csv": "csv", "focus": "focus.csv", "xlsx": "xlsx"}[format.value]
        headers["Content-Disposition"] = f'attachment; filename="commitments.{ext}"'
    return Response(body, media_type=media, headers=headers)


ROUTES: list[Any] = [export_commitments]
