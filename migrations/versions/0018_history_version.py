"""iplos_kommune_state: a version, bumped by every message checked against the history

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01

The intake checks a message's content against the history without holding the database's
write lock (SQLite has one writer for the whole database: a 50 MB message held it for its
whole processing, and every other message waited). At the one write transaction it compares
the versions it read with the stored ones; a message of the same municipality stored
meanwhile makes it check again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("iplos_kommune_state") as batch:
        batch.add_column(
            sa.Column("version", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("iplos_kommune_state") as batch:
        batch.drop_column("version")
