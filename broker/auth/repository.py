"""SQL for the ``api_keys`` table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from broker.auth.models import ApiKey
from broker.store.models import table

KEYS = table(ApiKey)


def insert(conn: Connection, row: dict[str, object]) -> None:
    conn.execute(KEYS.insert().values(**row))


def get(conn: Connection, key_id: str) -> dict[str, object] | None:
    row = conn.execute(select(KEYS).where(KEYS.c.id == key_id)).mappings().first()
    return dict(row) if row is not None else None


def all_keys(conn: Connection, *, include_revoked: bool) -> list[dict[str, object]]:
    query = select(KEYS).order_by(KEYS.c.created_at, KEYS.c.id)
    if not include_revoked:
        query = query.where(KEYS.c.revoked_at.is_(None))
    return [dict(r) for r in conn.execute(query).mappings()]


def revoke(conn: Connection, key_id: str, at: datetime) -> bool:
    """Mark a live key revoked; False when no live key has that id."""
    done = conn.execute(
        update(KEYS).where(KEYS.c.id == key_id, KEYS.c.revoked_at.is_(None)).values(revoked_at=at)
    )
    return done.rowcount == 1
