"""``GET /v1/offers``: current offers, cheapest per GPU-hour first."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.params import QueryParameter

from broker.api.deps import RuntimeDep
from broker.api.problems import GUARD_ERRORS, problem_responses
from broker.domain import Purchase
from broker.offers.schemas import OfferFilter, offer_out
from broker.offers.service import select_offers


@get(
    "/v1/offers",
    sync_to_thread=False,
    tags=["offers"],
    summary="Current offers, cheapest per GPU-hour first",
    responses=problem_responses(400, *GUARD_ERRORS),
)
def list_offers(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    gpu: Annotated[str | None, QueryParameter(description="GPU model id or family, e.g. H100 or A100-80GB")] = None,
    min_gpus: Annotated[int | None, QueryParameter(ge=1, le=1024)] = None,
    purchase: Annotated[Purchase | None, QueryParameter()] = None,
    provider: Annotated[str | None, QueryParameter()] = None,
    region: Annotated[str | None, QueryParameter()] = None,
    unknown_gpus: Annotated[bool, QueryParameter()] = False,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    offset: Annotated[int, QueryParameter(ge=0)] = 0,
) -> dict[str, Any]:
    f = OfferFilter(
        gpu=gpu, min_gpus=min_gpus, purchase=purchase, provider=provider, region=region, unknown_gpus=unknown_gpus
    )
    index = runtime.index.current
    offers = select_offers(index, runtime.catalog, f)
    page = offers[offset : offset + limit]
    next_offset = offset + limit if offset + limit < len(offers) else None
    next_url = None
    if next_offset is not None:
        query = {k: v for k, v in request.query_params.items() if k != "offset"} | {"offset": str(next_offset)}
        next_url = str(request.url.with_replacements(query=urlencode(query)))
    return {
        "items": [offer_out(o, index) for o in page],
        "total": len(offers),
        "limit": limit,
        "offset": offset,
        "next": next_url,
        "unit": "USD per hour",
    }
