"""The error list's message-level findings: an index for the findings that rejected a message
without naming a notification (issue 21)

Revision ID: 0023
Revises: 0019
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MESSAGE_LEVEL = "consequence = 'reject_message' AND notification_guid IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_finding_message_level",
        "finding",
        ["kommune_nr", "environment", "received_at", "message_id", "id"],
        postgresql_where=sa.text(_MESSAGE_LEVEL),
        sqlite_where=sa.text(_MESSAGE_LEVEL),
    )


def downgrade() -> None:
    op.drop_index("ix_finding_message_level", table_name="finding")
