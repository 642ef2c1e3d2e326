"""Reads of poll history per source."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from broker.store.models import PollRun, SourceState, table

RUNS = table(PollRun)


def last_runs(conn: Connection) -> dict[str, dict[str, Any]]:
    """The newest poll run of each source."""
    newest = select(RUNS.c.source, func.max(RUNS.c.id).label("id")).group_by(RUNS.c.source).subquery()
    rows = conn.execute(select(RUNS).join(newest, RUNS.c.id == newest.c.id)).mappings()
    return {r["source"]: dict(r) for r in rows}


def last_successes(conn: Connection) -> dict[str, Any]:
    """When each source last delivered data (its newest run that applied prices)."""
    rows = conn.execute(
        select(RUNS.c.source, func.max(RUNS.c.snapshot_taken_at))
        .where(RUNS.c.outcome.in_(("ok", "partial", "suspect")))
        .group_by(RUNS.c.source)
    )
    return {str(source): at for source, at in rows}


def last_complete(conn: Connection) -> dict[str, Any]:
    st = table(SourceState)
    return {r.source: r.last_complete_at for r in conn.execute(select(st.c.source, st.c.last_complete_at))}
