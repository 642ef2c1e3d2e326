"""Dependencies injected into handlers."""

from __future__ import annotations

from typing import TypeAlias

from litestar.datastructures import State
from litestar.di import NamedDependency

from broker.runtime import Runtime

RuntimeDep: TypeAlias = NamedDependency[Runtime]


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime
