"""usage records

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import broker.store.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("report_id", sa.String(length=128), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("placement_id", sa.String(length=36), nullable=True),
        sa.Column("received_at", broker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("started_at", broker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", broker.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("gpu_hours", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("interruptions", sa.Integer(), nullable=False),
        sa.Column("predictions", sa.BigInteger(), nullable=True),
        sa.Column("billed_usd", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("cost_usd", sa.Numeric(precision=18, scale=8), nullable=False),
        sa.Column("cost_estimated", sa.Boolean(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("instance_type", sa.String(length=128), nullable=False),
        sa.Column("purchase", sa.String(length=32), nullable=False),
        sa.Column("gpu_model", sa.String(length=128), nullable=False),
        sa.Column("gpus_per_node", sa.Integer(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["placement_id"],
            ["placements.id"],
            name=op.f("fk_usage_records_placement_id_placements"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint("report_id", name=op.f("uq_usage_records_report_id")),
    )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.create_index("ix_usage_records_gpu_model_ended_at", ["gpu_model", "ended_at"], unique=False)
        batch_op.create_index("ix_usage_records_placement_id", ["placement_id"], unique=False)
        batch_op.create_index("ix_usage_records_started_at", ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_records_started_at")
        batch_op.drop_index("ix_usage_records_placement_id")
        batch_op.drop_index("ix_usage_records_gpu_model_ended_at")
    op.drop_table("usage_records")
