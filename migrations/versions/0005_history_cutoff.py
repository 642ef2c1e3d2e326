"""history roll-up cut-off prices, price intervals by valid_from

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import broker.store.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "history_price_cutoff",
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("gpu_model", sa.String(length=128), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("purchase", sa.String(length=32), nullable=False),
        sa.Column("offer_id", BigId, nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("interval_id", BigId, nullable=False),
        sa.Column("hourly_usd", sa.Numeric(precision=18, scale=8), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "gpu_model", "provider", "purchase", "offer_id", name=op.f("pk_history_price_cutoff")
        ),
        sqlite_with_rowid=False,
    )
    # NULL: no cut-off written yet; the next refresh writes the one at built_to (no rebuild needed)
    with op.batch_alter_table("history_rollup_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cutoff_at", broker.store.models.UtcDateTime(timezone=True), nullable=True))
    # covering the open tail's reads (see broker.history.models)
    with op.batch_alter_table("price_intervals", schema=None) as batch_op:
        batch_op.drop_index("ix_price_intervals_valid_to")
        batch_op.create_index(
            "ix_price_intervals_valid_to", ["valid_to", "offer_id"], unique=False, postgresql_include=["id"]
        )
        batch_op.create_index(
            "ix_price_intervals_valid_from",
            ["valid_from", "offer_id", "hourly_usd"],
            unique=False,
            postgresql_include=["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("price_intervals", schema=None) as batch_op:
        batch_op.drop_index("ix_price_intervals_valid_from")
        batch_op.drop_index("ix_price_intervals_valid_to")
        batch_op.create_index("ix_price_intervals_valid_to", ["valid_to"], unique=False)
    with op.batch_alter_table("history_rollup_state", schema=None) as batch_op:
        batch_op.drop_column("cutoff_at")
    op.drop_table("history_price_cutoff")
