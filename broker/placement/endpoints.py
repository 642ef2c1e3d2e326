"""``POST /v1/place`` and ``GET /v1/placements/{id}``."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import MediaType, Response, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath

from broker.api.deps import RuntimeDep
from broker.api.problems import GUARD_ERRORS, problem_responses
from broker.placement.schemas import PLACE_EXAMPLE, PlaceAnswer, PlaceRequest
from broker.placement.service import DecisionLog, decide, stored


def _log(state: State) -> DecisionLog:
    log: DecisionLog = state.decisions
    return log


@post(
    "/v1/place",
    sync_to_thread=False,
    tags=["placement"],
    status_code=200,
    summary="The cheapest portable option for a job, by expected effective cost",
    responses={
        200: ResponseSpec(PlaceAnswer, generate_examples=False, description="The choice, alternatives, launch specs"),
        **problem_responses(400, 409, 413, *GUARD_ERRORS),
    },
)
def place_job(
    data: Annotated[PlaceRequest, Body(examples=[Example(summary="8 GPUs, H100 or A100-80GB", value=PLACE_EXAMPLE)])],
    runtime: RuntimeDep,
    state: State,
) -> Response[bytes]:
    return Response(decide(runtime, data, _log(state)), media_type=MediaType.JSON)


@get(
    "/v1/placements/{placement_id:str}",
    sync_to_thread=True,
    tags=["placement"],
    summary="A stored decision with its inputs",
    responses=problem_responses(400, 404, *GUARD_ERRORS),
)
def get_placement(placement_id: FromPath[str], runtime: RuntimeDep, state: State) -> dict[str, Any]:
    return stored(runtime, _log(state), placement_id)


ROUTES = [place_job, get_placement]
