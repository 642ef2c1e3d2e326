"""Observed spot exposure and interruptions per (provider, region, instance type), from usage records."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, func, select

from broker.domain import Purchase
from broker.risk.model import Observations, RiskKey
from broker.store.models import table
from broker.usage.models import UsageRecord

U = table(UsageRecord).c


def spot_observations(conn: Connection) -> dict[RiskKey, Observations]:
    stmt = (
        select(
            U.provider,
            U.region,
            U.instance_type,
            U.gpus_per_node,
            func.count(),
            func.sum(U.interruptions),
            func.sum(U.gpu_hours),
        )
        .where(U.purchase == Purchase.SPOT.value)
        .group_by(U.provider, U.region, U.instance_type, U.gpus_per_node)
    )
    acc: dict[RiskKey, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for provider, region, instance_type, gpn, n, k, gpu_hours in conn.execute(stmt):
        a = acc[(provider, region, instance_type)]
        a[0] += int(n)
        a[1] += int(k or 0)
        a[2] += float(gpu_hours or 0) / max(int(gpn or 1), 1)  # a gang's node-hours: GPU-hours / GPUs per node
    return {key: Observations(int(a[0]), int(a[1]), a[2]) for key, a in acc.items()}


def usage_version(conn: Connection) -> tuple[int, int]:
    """Changes whenever a usage record is added (records are never edited)."""
    n, top = conn.execute(select(func.count(), func.coalesce(func.max(U.id), 0))).one()
    return int(n), int(top)
