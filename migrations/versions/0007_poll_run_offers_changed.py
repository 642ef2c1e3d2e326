"""poll runs record how many offers they changed in the offer index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL on the runs before this column: unknown, so a replica rebuilds its index for them as before
    with op.batch_alter_table("poll_runs") as batch:
        batch.add_column(sa.Column("offers_changed", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("poll_runs") as batch:
        batch.drop_column("offers_changed")
