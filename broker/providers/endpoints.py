"""``GET /v1/providers``: per source, its last poll, data age, next run, and whether it is configured."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.datastructures import State

from broker.api.deps import RuntimeDep
from broker.api.problems import GUARD_ERRORS, problem_responses
from broker.providers.service import provider_status


@get(
    "/v1/providers",
    sync_to_thread=True,
    tags=["providers"],
    summary="Source health and schedule",
    responses=problem_responses(*GUARD_ERRORS),
)
def list_providers(runtime: RuntimeDep, state: State) -> dict[str, Any]:
    scheduler = state.get("scheduler")
    next_run = scheduler.next_run if scheduler is not None else None
    return {"providers": provider_status(runtime, demo=runtime.demo, next_run=next_run)}
