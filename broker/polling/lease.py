"""Database leases: replicas sharing one database run each scheduled poll once.

A lease is a row (name, holder, expires_at). Taking it succeeds when the row is absent, expired, or already
ours; a replica that dies simply stops renewing and the lease expires. Works on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, or_, update
from sqlalchemy.exc import IntegrityError

from broker.domain import utcnow
from broker.store.models import Lease, table

LEASES = table(Lease)


def acquire(engine: Engine, name: str, holder: str, ttl: timedelta, now: datetime | None = None) -> bool:
    now = now or utcnow()
    expires = now + ttl
    with engine.begin() as conn:
        taken = conn.execute(
            update(LEASES)
            .where(LEASES.c.name == name, or_(LEASES.c.expires_at <= now, LEASES.c.holder == holder))
            .values(holder=holder, acquired_at=now, expires_at=expires)
        ).rowcount
        if taken:
            return True
    try:
        with engine.begin() as conn:
            conn.execute(insert(LEASES), {"name": name, "holder": holder, "acquired_at": now, "expires_at": expires})
        return True
    except IntegrityError:
        return False  # someone else holds it


def extend(engine: Engine, name: str, holder: str, until: datetime) -> bool:
    """Keep holding a lease until ``until`` (after a poll: block the other replicas for the rest of the interval)."""
    with engine.begin() as conn:
        return bool(
            conn.execute(
                update(LEASES).where(LEASES.c.name == name, LEASES.c.holder == holder).values(expires_at=until)
            ).rowcount
        )


def release(engine: Engine, name: str, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(LEASES).where(LEASES.c.name == name, LEASES.c.holder == holder))
