"""registry_entry and party.source: senders known from NHN's registries (issue 23)

Revision ID: 0025
Revises: 0023
Create Date: 2026-12-05

- registry_entry: what the Adresseregister and the CPP/CPA registry last said about a HER-id
  (known or not), until when it is used, and when a refresh was last forced.
- party.source: manual, import or ar; existing parties were typed in or imported: manual.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_entry",
        sa.Column("her_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("known", sa.Boolean(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("forced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("async_queue", sa.String(300), nullable=True),
        sa.Column("error_queue", sa.String(300), nullable=True),
        sa.Column("sync_queue", sa.String(300), nullable=True),
        sa.Column("problem", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("her_id"),
    )
    with op.batch_alter_table("party") as batch:
        batch.add_column(
            sa.Column("source", sa.String(10), nullable=False, server_default="manual")
        )


def downgrade() -> None:
    with op.batch_alter_table("party") as batch:
        batch.drop_column("source")
    op.drop_table("registry_entry")
