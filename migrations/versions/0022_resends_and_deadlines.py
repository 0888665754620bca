"""iplos_notification.content_core_sha256 and deadline_extension (issue 21)

Revision ID: 0022
Revises: 0019
Create Date: 2026-12-05

- content_core_sha256: a notification's content digest without notifikasjonTid,
  hendelseRegTid and pasientGUID, so a resend that renews only those is the same notification.
  Rows stored before have none and compare by the full digest.
- deadline_extension: a later deadline KPR granted one municipality for one reporting year
  (`kpr-mottak calendar extend`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("iplos_notification") as batch:
        batch.add_column(sa.Column("content_core_sha256", sa.String(64), nullable=True))
    op.create_table(
        "deadline_extension",
        sa.Column("kommune_nr", sa.String(4), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kommune_nr", "year"),
    )


def downgrade() -> None:
    op.drop_table("deadline_extension")
    with op.batch_alter_table("iplos_notification") as batch:
        batch.drop_column("content_core_sha256")
