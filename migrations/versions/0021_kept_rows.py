"""Rows kept with their error (issue 21): keep_with_error findings count as failing in the
error list's partial indexes; notifikasjon.feil and hendelse.tjeneste_type_tolket

Revision ID: 0021
Revises: 0019
Create Date: 2026-12-05

A notification the Annotations do not let KPR refuse ("Ingen handling") is now stored with
its finding and reported as an error (consequence `keep_with_error`). The error list reads
such findings like dropped rows, so the three partial indexes on failing findings name the
new consequence. `notifikasjon.feil` lists the rule ids of the errors a stored row carries;
`hendelse.tjeneste_type_tolket` is the service type as read ("08" is code 8).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "consequence IN ('drop_notification', 'reject_message') AND notification_guid IS NOT NULL"
_NEW = (
    "consequence IN ('drop_notification', 'keep_with_error', 'reject_message') "
    "AND notification_guid IS NOT NULL"
)
_INDEXES = {
    "ix_finding_failing": ["kommune_nr", "message_id"],
    "ix_finding_error_list": ["kommune_nr", "environment", "received_at", "message_id", "id"],
    "ix_finding_failing_guid": ["kommune_nr", "notification_guid"],
}


def _recreate(where: str) -> None:
    for name, columns in _INDEXES.items():
        op.drop_index(name, table_name="finding")
        op.create_index(
            name,
            "finding",
            columns,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )


def upgrade() -> None:
    _recreate(_NEW)
    with op.batch_alter_table("notifikasjon", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feil", sa.Text(), nullable=True))
    with op.batch_alter_table("hendelse", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tjeneste_type_tolket", sa.Text(), nullable=True))
    # the rows stored before read their service type as sent
    op.execute(sa.text("UPDATE hendelse SET tjeneste_type_tolket = tjeneste_type"))


def downgrade() -> None:
    with op.batch_alter_table("hendelse", schema=None) as batch_op:
        batch_op.drop_column("tjeneste_type_tolket")
    with op.batch_alter_table("notifikasjon", schema=None) as batch_op:
        batch_op.drop_column("feil")
    _recreate(_OLD)
