"""AMQP 1.0 transport: the inbox, the outbox and message.transport (issue 24)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _status_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
    ]


def upgrade() -> None:
    # native ADD/DROP COLUMN on both (SQLite >= 3.35): a batch copy of `message` on SQLite
    # would cascade-delete the rows that reference it
    op.add_column(
        "message",
        sa.Column("transport", sa.String(20), nullable=False, server_default="ebxml-http"),
    )
    op.create_table(
        "amqp_inbox",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("amqp_message_id", sa.String(500), nullable=False),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        *_status_columns(),
        sa.Column(
            "message_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("message.id", ondelete="SET NULL", name="fk_amqp_inbox_message_id_message"),
            nullable=True,
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_amqp_inbox"),
        sa.UniqueConstraint("amqp_message_id", name="uq_amqp_inbox_amqp_message_id"),
    )
    op.create_index("ix_amqp_inbox_due", "amqp_inbox", ["status", "next_attempt_at"])
    op.create_index("ix_amqp_inbox_message_id", "amqp_inbox", ["message_id"])
    op.create_table(
        "amqp_outbox",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column(
            "inbox_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("amqp_inbox.id", ondelete="SET NULL", name="fk_amqp_outbox_inbox_id_amqp_inbox"),
            nullable=True,
        ),
        sa.Column("dedup_key", sa.String(600), nullable=False),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        *_status_columns(),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_amqp_outbox"),
        sa.UniqueConstraint("dedup_key", name="uq_amqp_outbox_dedup_key"),
    )
    op.create_index("ix_amqp_outbox_due", "amqp_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_amqp_outbox_inbox_id", "amqp_outbox", ["inbox_id"])


def downgrade() -> None:
    op.drop_table("amqp_outbox")
    op.drop_table("amqp_inbox")
    op.execute("ALTER TABLE message DROP COLUMN transport")
