"""history roll-ups and indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import broker.store.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "history_price_daily",
        sa.Column("gpu_model", sa.String(length=128), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("purchase", sa.String(length=32), nullable=False),
        sa.Column("secs", sa.BigInteger(), nullable=False),
        sa.Column("mn_g", sa.Float(), nullable=False),
        sa.Column("mx_g", sa.Float(), nullable=False),
        sa.Column("ws_g", sa.Float(), nullable=False),
        sa.Column("last_g", sa.Float(), nullable=True),
        sa.Column("mn_i", sa.Float(), nullable=False),
        sa.Column("mx_i", sa.Float(), nullable=False),
        sa.Column("ws_i", sa.Float(), nullable=False),
        sa.Column("last_i", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("gpu_model", "day", "provider", "purchase", name=op.f("pk_history_price_daily")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "history_poll_gaps",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("gap_from", broker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("gap_to", broker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", "gap_from", name=op.f("pk_history_poll_gaps")),
    )
    op.create_table(
        "history_withdrawals",
        sa.Column("offer_id", BigId, nullable=False),
        sa.Column("gone_at", broker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["offers.id"], name=op.f("fk_history_withdrawals_offer_id_offers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("offer_id", "gone_at", name=op.f("pk_history_withdrawals")),
    )
    op.create_table(
        "history_rollup_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("built_to", broker.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_history_rollup_state")),
    )
    with op.batch_alter_table("price_intervals", schema=None) as batch_op:
        batch_op.create_index("ix_price_intervals_valid_to", ["valid_to"], unique=False)
    with op.batch_alter_table("poll_runs", schema=None) as batch_op:
        batch_op.create_index("ix_poll_runs_source_taken", ["source", "snapshot_taken_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("poll_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_poll_runs_source_taken")
    with op.batch_alter_table("price_intervals", schema=None) as batch_op:
        batch_op.drop_index("ix_price_intervals_valid_to")
    op.drop_table("history_rollup_state")
    op.drop_table("history_withdrawals")
    op.drop_table("history_poll_gaps")
    op.drop_table("history_price_daily")
