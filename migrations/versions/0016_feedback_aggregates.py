"""feedback aggregates: the open feedback's figures per municipality, year and environment

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback_kommune",
        sa.Column("environment", sa.String(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("kommune_nr", sa.String(length=4), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("readable", sa.BigInteger(), nullable=False),
        sa.Column("first_readable_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_readable_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("top_rule", sa.String(length=60), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "environment", "year", "kommune_nr", name=op.f("pk_feedback_kommune")
        ),
    )
    op.create_table(
        "feedback_count",
        sa.Column("environment", sa.String(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("kommune_nr", sa.String(length=4), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=60), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "environment", "year", "kommune_nr", "kind", "key", name=op.f("pk_feedback_count")
        ),
    )
    op.create_table(
        "feedback_median",
        sa.Column("environment", sa.String(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=60), nullable=False),
        sa.Column("median", sa.Float(), nullable=False),
        sa.Column("kommuner", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "environment", "year", "kind", "key", name=op.f("pk_feedback_median")
        ),
    )
    op.create_table(
        "feedback_state",
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_feedback_state")),
    )


def downgrade() -> None:
    op.drop_table("feedback_state")
    op.drop_table("feedback_median")
    op.drop_table("feedback_count")
    op.drop_table("feedback_kommune")
