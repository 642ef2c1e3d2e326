"""Dependencies injected into handlers."""

from __future__ import annotations

from litestar.datastructures import State

from broker.runtime import Runtime


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime
