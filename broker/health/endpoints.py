"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import get
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from broker.api.deps import RuntimeDep
from broker.api.problems import Problem, problem_responses
from broker.store import migrate


@get("/healthz", sync_to_thread=False, tags=["health"], summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/readyz",
    sync_to_thread=True,
    responses=problem_responses(503),
    tags=["health"],
    summary="Readiness: database reachable, migrations current, offer index loaded",
)
def readyz(runtime: RuntimeDep) -> dict[str, Any]:
    checks: dict[str, str] = {}
    try:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        checks["migrations"] = "ok" if migrate.is_current(runtime.engine) else "not at head: run `broker db upgrade`"
    except SQLAlchemyError as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
        checks["migrations"] = "unknown"
    checks["offer_index"] = "ok" if runtime.index.loaded else "not loaded yet"
    if any(v != "ok" for v in checks.values()):
        failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
        raise Problem(503, "Not ready", failing, slug="not-ready", extensions={"checks": checks})
    return {"status": "ready", "checks": checks, "offers": len(runtime.index.current.offers)}
