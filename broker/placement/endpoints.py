"""``POST /v1/place`` and ``GET /v1/placements/{id}``."""

from __future__ import annotations

from typing import Any

from litestar import get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from broker.api.deps import RuntimeDep
from broker.placement.schemas import PlaceRequest
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
)
def place_job(data: JSONBody[PlaceRequest], runtime: RuntimeDep, state: State) -> dict[str, Any]:
    return decide(runtime, data, _log(state))


@get(
    "/v1/placements/{placement_id:str}",
    sync_to_thread=True,
    tags=["placement"],
    summary="A stored decision with its inputs",
)
def get_placement(placement_id: FromPath[str], runtime: RuntimeDep, state: State) -> dict[str, Any]:
    return stored(runtime, _log(state), placement_id)


ROUTES = [place_job, get_placement]
