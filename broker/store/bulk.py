"""Fast bulk writes and reads for ingest, below the ORM.

A 100k-offer snapshot must apply in seconds, and SQLAlchemy's per-value type processing dominates at that
size. These helpers talk to the DBAPI cursor directly (COPY on PostgreSQL, executemany on SQLite) inside the
caller's transaction, and convert values the same way the column types would.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import msgspec
from sqlalchemy import Connection

SQLITE_DT = "%Y-%m-%d %H:%M:%S.%f"  # the text form SQLAlchemy's SQLite DateTime reads and writes


class Rows(Protocol):
    """Rows to insert: a list, or rows of a known count made while COPY sends them."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Sequence[Any]]: ...


class Dialect:
    """Value conversion and SQL for one database."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self.ph = "%s" if self.postgres else "?"

    def dt(self, value: datetime | None) -> Any:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value if self.postgres else value.replace(tzinfo=None).strftime(SQLITE_DT)

    def read_dt(self, raw: Any) -> datetime | None:
        """A timestamp as the raw cursor returns it (text on SQLite), as aware UTC."""
        if raw is None:
            return None
        if isinstance(raw, datetime):
            return raw.astimezone(UTC) if raw.tzinfo else raw.replace(tzinfo=UTC)
        if isinstance(raw, float | int):  # epoch seconds (cheaper to fetch in bulk than timestamptz)
            return datetime.fromtimestamp(raw, UTC)
        return datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)

    def money(self, value: Decimal | None) -> Any:
        # SQLite has no decimal type: text keeps the exact digits and NUMERIC affinity stores the number
        return None if value is None else (value if self.postgres else str(value))

    def json(self, value: Any) -> str:
        return msgspec.json.encode(value, order="sorted").decode()

    def boolean(self, value: bool) -> Any:
        return value if self.postgres else int(value)

    def insert(self, table: str, columns: Sequence[str], rows: Rows, pg_types: Sequence[str] = ()) -> None:
        """Insert rows. PostgreSQL: COPY; binary COPY when ``pg_types`` names each column's type (exactly the
        column's own type, or one whose binary form it reads, as text for json): the server then parses no text."""
        if not rows:
            return
        cols = ", ".join(columns)
        if self.postgres:
            cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            binary = " (FORMAT BINARY)" if pg_types else ""
            with cursor.copy(f"COPY {table} ({cols}) FROM STDIN{binary}") as copy:
                if pg_types:
                    copy.set_types(list(pg_types))
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join([self.ph] * len(columns))
        self.conn.exec_driver_sql(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(map(tuple, rows)))

    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run ``sql`` (with ``?`` placeholders) once per row."""
        batch = list(map(tuple, rows))
        if not batch:
            return
        if self.postgres:
            sql = sql.replace("?", "%s")
            cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.executemany(sql, batch)
            return
        self.conn.exec_driver_sql(sql, batch)

    def next_ids(self, table: str, n: int) -> list[int]:
        """Reserve ``n`` primary keys. SQLite: the caller holds the write lock (it has written in this
        transaction), so max(id) cannot move under it. PostgreSQL: from the table's own sequence."""
        if n == 0:
            return []
        if self.postgres:
            cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            # One array value: 100k result rows cost the server more than the nextval calls. The sequence is looked
            # up once (a plain subquery would be inlined, and pg_get_serial_sequence is then called per row).
            cursor.execute(
                "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, 'id')::regclass AS seq) "
                "SELECT array_agg(nextval(s.seq)) FROM s CROSS JOIN generate_series(1, %s)",
                (table, n),
            )
            row = cursor.fetchone()  # an aggregate: always one row
            return sorted(row[0]) if row else []  # ascending: inserts then land at the end of the indexes
        start = int(self.conn.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {table}").scalar_one()) + 1
        return list(range(start, start + n))
