"""``GET /v1/prices/history`` (JSON or CSV) and ``GET /v1/market/{gpu}``."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import PathParameter, QueryParameter

from broker.api.deps import RuntimeDep
from broker.api.problems import GUARD_ERRORS, Problem, also_answers, problem_responses
from broker.domain import utcnow
from broker.history.market import market_view
from broker.history.schemas import MAX_POINTS, BadQuery, build_query
from broker.history.service import HistoryResult, price_history
from broker.runtime import Runtime

Q = QueryParameter


def bad_request(exc: BadQuery) -> Problem:
    return Problem(400, "Invalid request", exc.message, slug="invalid-request",
                   extensions={"errors": [{"field": exc.param, "message": exc.message}]})  # fmt: skip


def poll_intervals(runtime: Runtime) -> dict[str, float]:
    return {name: s.interval_minutes for name, s in runtime.settings.sources.items()}


def to_csv(result: HistoryResult) -> str:
    """One row per point: the series key columns, t, value (gaps are in the JSON answer only)."""
    keys: list[str] = []
    for s in result.series:
        keys += [k for k in s.key if k not in keys]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*keys, "t", "value", "unit"])
    unit = result.to_json()["unit"]
    for s in result.series:
        head = ["" if s.key.get(k) is None else s.key[k] for k in keys]
        for t, v in s.points:
            w.writerow([*head, t.isoformat(), f"{v:.8f}".rstrip("0").rstrip("."), unit])
    return buf.getvalue()


@get(
    "/v1/prices/history",
    sync_to_thread=True,
    tags=["history"],
    summary="Price history as bucketed series",
    responses=problem_responses(400, *GUARD_ERRORS),
    operation_class=also_answers("text/csv"),
)
def prices_history(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    gpu: Annotated[str | None, Q(description="GPU model id or family, e.g. H100 or A100-80GB")] = None,
    purchase: Annotated[str | None, Q(description="on_demand, spot, reserved ...")] = None,
    provider: Annotated[str | None, Q()] = None,
    region: Annotated[str | None, Q()] = None,
    instance_type: Annotated[str | None, Q()] = None,
    offer_id: Annotated[int | None, Q(description="one offer (the offer_id of a series key)")] = None,
    from_: Annotated[str | None, Q(name="from", description="ISO 8601 with a zone; default: to - 7 days")] = None,
    to: Annotated[str | None, Q(description="ISO 8601 with a zone; default: now")] = None,
    step: Annotated[str, Q(description=f"bucket: 15m, 1h, 1d ... or raw; at most {MAX_POINTS} per series")] = "1h",
    agg: Annotated[str, Q(description="min, avg (time-weighted), max, last")] = "min",
    group_by: Annotated[str, Q(description="offer, provider, gpu_model, purchase, region (comma-separated)")] = (
        "provider"
    ),
    unit: Annotated[str, Q(description="gpu_hour or instance_hour")] = "gpu_hour",
) -> Response[Any]:
    now = utcnow()
    try:
        q = build_query(runtime.catalog, now=now, gpu=gpu, purchase=purchase, provider=provider, region=region,
                        instance_type=instance_type, offer_id=offer_id, from_=from_, to=to, step=step, agg=agg,
                        group_by=group_by, unit=unit)  # fmt: skip
        result = price_history(runtime.engine, q, now=now, intervals=poll_intervals(runtime))
    except BadQuery as exc:
        raise bad_request(exc) from None
    if "text/csv" in request.headers.get("accept", ""):
        return Response(to_csv(result), media_type="text/csv; charset=utf-8")
    return Response(result.to_json())


@get(
    "/v1/market/{gpu:str}",
    sync_to_thread=True,
    tags=["history"],
    summary="One GPU model: prices now and lately",
    responses=problem_responses(400, *GUARD_ERRORS),
)
def market(runtime: RuntimeDep, gpu: Annotated[str, PathParameter(description="a GPU model id")]) -> dict[str, Any]:
    try:
        return market_view(runtime.engine, runtime.catalog, runtime.index.current, gpu, now=utcnow(),
                           intervals=poll_intervals(runtime))  # fmt: skip
    except BadQuery as exc:
        raise bad_request(exc) from None


ROUTES: list[Any] = [prices_history, market]
