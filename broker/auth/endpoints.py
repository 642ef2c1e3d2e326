"""``/v1/keys``: key management over the API (admin scope, including the listing)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import delete, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from broker.api.deps import RuntimeDep
from broker.api.problems import GUARD_ERRORS, Problem, problem_responses
from broker.auth import service
from broker.auth.schemas import KeyCreate

ADMIN = {"scope": service.Scope.ADMIN.value}


@get("/v1/keys", sync_to_thread=True, tags=["keys"], opt=ADMIN, summary="API keys (never their secrets)",
     responses=problem_responses(400, *GUARD_ERRORS))
def list_keys(
    runtime: RuntimeDep, include_revoked: Annotated[bool, QueryParameter(description="list revoked keys too")] = False
) -> dict[str, Any]:
    keys = service.list_keys(runtime.engine, include_revoked=include_revoked)
    return {"items": [k.public() for k in keys]}


@post("/v1/keys", sync_to_thread=True, tags=["keys"], opt=ADMIN, status_code=201,
      summary="Create a key; the response holds its token, shown this once",
      responses=problem_responses(400, 413, *GUARD_ERRORS))
def create_key(data: JSONBody[KeyCreate], runtime: RuntimeDep) -> dict[str, Any]:
    info, token = service.create_key(
        runtime.engine, data.name, [s.value for s in data.scopes], rate_per_second=data.rate_per_second,
        burst=data.burst,
    )
    return {**info.public(), "token": token}


@delete("/v1/keys/{key_id:str}", sync_to_thread=True, tags=["keys"], opt=ADMIN, status_code=200,
        summary="Revoke a key (takes effect on every replica within seconds)",
        responses=problem_responses(400, 404, *GUARD_ERRORS))
def revoke_key(key_id: FromPath[str], runtime: RuntimeDep) -> dict[str, Any]:
    try:
        info = service.revoke_key(runtime.engine, key_id)
    except service.KeyNotFound as exc:
        raise Problem(404, "Not found", str(exc), slug="not-found") from None
    guard = runtime.extras.get("auth")
    store = getattr(guard, "store", None)
    if isinstance(store, service.KeyStore):
        store.forget(key_id)
    return info.public()


ROUTES = [list_keys, create_key, revoke_key]
