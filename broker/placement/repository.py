"""Stored placement decisions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select

from broker.store.models import Placement, table

PLACEMENTS = table(Placement)


def save_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(PLACEMENTS), list(rows))


def get(conn: Connection, placement_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(PLACEMENTS).where(PLACEMENTS.c.id == placement_id)).mappings().first()
    return dict(row) if row else None
