"""``GET /v1/risk``: per (provider, region, instance type) the prior, what was observed, and the posterior."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import get
from litestar.params import QueryParameter

from broker.api.deps import RuntimeDep
from broker.api.problems import GUARD_ERRORS, problem_responses
from broker.risk.model import RiskEntry
from broker.risk.service import risk_table


def entry_out(e: RiskEntry) -> dict[str, Any]:
    provider, region, instance_type = e.key
    observed = e.observations.rate_per_hour
    return {
        "provider": provider,
        "region": region,
        "instance_type": instance_type,
        "prior": {
            "rate_per_hour": round(e.prior.rate_per_hour, 6),
            "source": e.prior.source,
            "pseudo_node_hours": e.prior.pseudo_hours,
        },
        "observations": {
            "reports": e.observations.reports,
            "interruptions": e.observations.interruptions,
            "node_hours": round(e.observations.node_hours, 6),
            "rate_per_hour": None if observed is None else round(observed, 6),
        },
        "posterior": {
            "rate_per_hour": round(e.posterior.mean, 6),
            "sd_per_hour": round(e.posterior.sd, 6),
            "gamma_shape": round(e.posterior.shape, 6),
            "gamma_rate_node_hours": round(e.posterior.rate, 6),
        },
    }


@get(
    "/v1/risk",
    sync_to_thread=True,
    tags=["risk"],
    summary="Spot interruption rates: prior, observed, posterior",
    responses=problem_responses(400, *GUARD_ERRORS),
)
def get_risk(
    runtime: RuntimeDep,
    provider: Annotated[str | None, QueryParameter()] = None,
    region: Annotated[str | None, QueryParameter()] = None,
    instance_type: Annotated[str | None, QueryParameter()] = None,
) -> dict[str, Any]:
    table = risk_table(runtime)
    items = [
        entry_out(e)
        for key, e in table.entries.items()
        if (provider is None or key[0] == provider)
        and (region is None or key[1] == region)
        and (instance_type is None or key[2] == instance_type)
    ]
    return {
        "items": items,
        "unit": "spot interruptions per node-hour",
        "method": "Gamma-Poisson: posterior mean = (prior rate x pseudo hours + interruptions) / "
        "(pseudo hours + observed node-hours); only spot runs are observations",
    }


ROUTES: list[Any] = [get_risk]
