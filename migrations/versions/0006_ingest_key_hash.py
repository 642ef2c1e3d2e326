"""offers keyed by a digest; interval tables without foreign keys

Ingest of a 100k-offer snapshot on PostgreSQL spent most of its server time in the nine-column unique index on
offers and in the per-row foreign-key triggers of the interval tables. The natural key becomes unique through a
16-byte digest (``uq_offers_source_key_hash``, which also serves lookups by source, so ``ix_offers_source`` goes),
and the interval tables drop their foreign keys (offers and poll runs are never deleted; see broker/store/models.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"  # the lead may re-chain
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_COLUMNS = ("provider", "region", "zone", "instance_type", "purchase", "term", "payment", "plan")
OLD_KEY = ("source", *KEY_COLUMNS)
INTERVAL_FKS = (
    ("price_intervals", "fk_price_intervals_offer_id_offers", "offers", "offer_id", "CASCADE"),
    ("price_intervals", "fk_price_intervals_poll_run_id_poll_runs", "poll_runs", "poll_run_id", "SET NULL"),
    ("availability_intervals", "fk_availability_intervals_offer_id_offers", "offers", "offer_id", "CASCADE"),
)


def key_hash(parts: Sequence[str]) -> bytes:
    """Frozen copy of ``broker.store.ingest.offer_key_hash`` (a test checks they agree)."""
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=16).digest()


def _fill_key_hash() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(f"SELECT id, {', '.join(KEY_COLUMNS)} FROM offers")).all()
    if rows:
        conn.execute(
            sa.text("UPDATE offers SET key_hash = :h WHERE id = :id"),
            [{"h": key_hash(r[1:]), "id": r[0]} for r in rows],
        )


def _rebuild_offers(change: str) -> None:
    """Alter ``offers`` (on SQLite by copying it into a new table).

    SQLite drops the old table with foreign keys enforced (the pragma cannot change inside the migration's
    transaction), which would cascade-delete the rows of tables referencing offers: they are kept aside and put back.
    """
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    kept: list[str] = []
    if sqlite:
        inspector = sa.inspect(conn)
        for name in inspector.get_table_names():
            if any(fk["referred_table"] == "offers" for fk in inspector.get_foreign_keys(name)):
                conn.execute(sa.text(f"CREATE TEMP TABLE _kept_{name} AS SELECT * FROM {name}"))
                kept.append(name)
    with op.batch_alter_table("offers", schema=None) as batch_op:
        if change == "upgrade":
            batch_op.alter_column("key_hash", existing_type=sa.LargeBinary(length=16), nullable=False)
            batch_op.drop_constraint("uq_offers_key", type_="unique")
            batch_op.drop_index("ix_offers_source")
            batch_op.create_unique_constraint("uq_offers_source_key_hash", ["source", "key_hash"])
        else:
            batch_op.drop_constraint("uq_offers_source_key_hash", type_="unique")
            batch_op.create_index("ix_offers_source", ["source"], unique=False)
            batch_op.create_unique_constraint("uq_offers_key", list(OLD_KEY))
            batch_op.drop_column("key_hash")
    for name in kept:
        conn.execute(sa.text(f"DELETE FROM {name}"))
        conn.execute(sa.text(f"INSERT INTO {name} SELECT * FROM _kept_{name}"))
        conn.execute(sa.text(f"DROP TABLE _kept_{name}"))


def upgrade() -> None:
    # the children first: on SQLite, rebuilding offers must not cascade into them
    for table, name, _, _, _ in INTERVAL_FKS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(name, type_="foreignkey")
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_hash", sa.LargeBinary(length=16), nullable=True))
    _fill_key_hash()
    _rebuild_offers("upgrade")


def downgrade() -> None:
    _rebuild_offers("downgrade")
    for table, name, referred, column, ondelete in INTERVAL_FKS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(name, referred, [column], ["id"], ondelete=ondelete)
