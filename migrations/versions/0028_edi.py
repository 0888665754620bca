"""EDI channel: the outbox of reply mails (issue 25)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # the CPA's mailto: endpoint is in party_cpa.reply_channels and message.request_id is
    # indexed since 0027 (issue 26)
    op.create_table(
        "edi_outbox",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column(
            "message_id",
            _BIG_ID,
            sa.ForeignKey("message.id", ondelete="SET NULL", name="fk_edi_outbox_message_id_message"),
            nullable=True,
        ),
        sa.Column("dedup_key", sa.String(100), nullable=False),
        sa.Column("mail_from", sa.String(320), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=True),
        sa.Column("content_type", sa.String(1000), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_edi_outbox"),
        sa.UniqueConstraint("dedup_key", name="uq_edi_outbox_dedup_key"),
    )
    op.create_index("ix_edi_outbox_due", "edi_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_edi_outbox_message_id", "edi_outbox", ["message_id"])


def downgrade() -> None:
    op.drop_table("edi_outbox")
