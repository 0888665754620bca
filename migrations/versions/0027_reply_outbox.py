"""Replies as the sender's CPA asks: the reply outbox, the CPA's reply channels and the
message's request id indexed (issue 26)

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # native ADD COLUMN on both: a batch copy of party_cpa on SQLite is needless here
    op.add_column("party_cpa", sa.Column("reply_channels", sa.JSON(), nullable=True))
    # the HTTP binding finds the row the intake stored for its request by the request id
    op.create_index("ix_message_request_id", "message", ["request_id"])
    op.create_table(
        "reply_outbox",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column(
            "message_id",
            _BIG_ID,
            sa.ForeignKey(
                "message.id", ondelete="CASCADE", name="fk_reply_outbox_message_id_message"
            ),
            nullable=False,
        ),
        sa.Column(
            "party_id",
            _BIG_ID,
            sa.ForeignKey("party.id", ondelete="SET NULL", name="fk_reply_outbox_party_id_party"),
            nullable=True,
        ),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("endpoint", sa.String(1000), nullable=False),
        sa.Column("reply_ebms_message_id", sa.String(500), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("retry_interval_seconds", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "ack_message_id",
            _BIG_ID,
            sa.ForeignKey(
                "message.id", ondelete="SET NULL", name="fk_reply_outbox_ack_message_id_message"
            ),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reply_outbox"),
        sa.UniqueConstraint("message_id", name="uq_reply_outbox_message_id"),
    )
    op.create_index("ix_reply_outbox_due", "reply_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_reply_outbox_party_id", "reply_outbox", ["party_id"])
    op.create_index(
        "ix_reply_outbox_reply_ebms_message_id", "reply_outbox", ["reply_ebms_message_id"]
    )


def downgrade() -> None:
    op.drop_table("reply_outbox")
    op.drop_index("ix_message_request_id", table_name="message")
    op.execute("ALTER TABLE party_cpa DROP COLUMN reply_channels")
