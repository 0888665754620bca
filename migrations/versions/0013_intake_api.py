"""The intake API: municipalities per year, reminders in the outbox, fid switch, indexes

Revision ID: 0013
Revises: 0003
Create Date: 2026-11-30

- `kommune`: SSB classification 131 per reporting year (coverage).
- `party_kommune.hide_fid`: KPR may withhold person identifiers from one municipality.
- `notification_outbox`: reminders concern a municipality, not a message (`message_id`
  nullable, `kind`, `kommune_nr`), and `dedup_key` makes "once a day" a unique constraint.
- indexes for the message filters and the error list's "corrected" look-up.
- `access_log` is append-only: on PostgreSQL a trigger refuses UPDATE and DELETE, on SQLite
  UPDATE (the application also refuses both in its session, on both databases).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRIGGER_FUNCTION = """
CREATE OR REPLACE FUNCTION access_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'access_log is append-only';
END;
$$ LANGUAGE plpgsql
"""
_TRIGGER = """
CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log
FOR EACH ROW EXECUTE FUNCTION access_log_append_only()
"""

_FAILING = (
    "consequence IN ('drop_notification', 'reject_message') AND notification_guid IS NOT NULL"
)
_SQLITE_TRIGGER = """
CREATE TRIGGER access_log_append_only BEFORE UPDATE ON access_log
BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END
"""


def upgrade() -> None:
    op.create_table(
        "kommune",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("kommune_nr", sa.String(length=4), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("year", "kommune_nr", name=op.f("pk_kommune")),
    )
    with op.batch_alter_table("party_kommune") as batch:
        batch.add_column(
            sa.Column("hide_fid", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("notification_outbox") as batch:
        batch.alter_column("message_id", existing_type=sa.BigInteger(), nullable=True)
        batch.add_column(
            sa.Column("kind", sa.String(length=20), server_default="message", nullable=False)
        )
        batch.add_column(sa.Column("kommune_nr", sa.String(length=4), nullable=True))
        batch.add_column(sa.Column("dedup_key", sa.String(length=400), nullable=True))
        batch.create_unique_constraint(
            op.f("uq_notification_outbox_dedup_key"), ["dedup_key"]
        )
    op.create_index(
        "ix_iplos_notification_ref", "iplos_notification", ["environment", "kommune_nr", "ref"]
    )
    op.create_index("ix_finding_rule_message", "finding", ["rule_id", "message_id"])
    op.create_index("ix_finding_code_message", "finding", ["apprec_code", "message_id"])
    op.create_index(
        "ix_message_kommune_env", "message", ["kommune_nr", "environment", "received_at"]
    )
    op.create_index(
        "ix_finding_failing",
        "finding",
        ["kommune_nr", "message_id"],
        postgresql_where=sa.text(_FAILING),
        sqlite_where=sa.text(_FAILING),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text(_TRIGGER_FUNCTION))
        op.execute(sa.text(_TRIGGER))
    else:
        # SQLite: UPDATE only; the test suite empties its tables with DELETE between tests.
        op.execute(sa.text(_SQLITE_TRIGGER))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text("DROP TRIGGER IF EXISTS access_log_append_only ON access_log"))
        op.execute(sa.text("DROP FUNCTION IF EXISTS access_log_append_only()"))
    else:
        op.execute(sa.text("DROP TRIGGER IF EXISTS access_log_append_only"))
    op.drop_index("ix_finding_failing", table_name="finding")
    op.drop_index("ix_message_kommune_env", table_name="message")
    op.drop_index("ix_finding_code_message", table_name="finding")
    op.drop_index("ix_finding_rule_message", table_name="finding")
    op.drop_index("ix_iplos_notification_ref", table_name="iplos_notification")
    op.execute(sa.text("DELETE FROM notification_outbox WHERE message_id IS NULL"))
    with op.batch_alter_table("notification_outbox") as batch:
        batch.drop_constraint(op.f("uq_notification_outbox_dedup_key"), type_="unique")
        batch.drop_column("dedup_key")
        batch.drop_column("kommune_nr")
        batch.drop_column("kind")
        batch.alter_column("message_id", existing_type=sa.BigInteger(), nullable=False)
    with op.batch_alter_table("party_kommune") as batch:
        batch.drop_column("hide_fid")
    op.drop_table("kommune")
