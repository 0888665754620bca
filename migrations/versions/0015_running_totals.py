"""Running totals for coverage and statistics; finding.corrected_by, environment and
received_at for the error list

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30

The totals start empty and without a calendar fingerprint, so they are stale: `kpr-mottak db
upgrade` rebuilds them (and corrected_by) from the stored rows right after migrating, and
coverage reads the rows directly until then.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FAILING = "consequence IN ('drop_notification', 'reject_message') AND notification_guid IS NOT NULL"
_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("finding", schema=None) as batch_op:
        batch_op.add_column(sa.Column("corrected_by", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("environment", sa.String(20), nullable=True))
        batch_op.add_column(sa.Column("received_at", _UTC, nullable=True))
    # the message's environment and time on each failing finding (the error list's index)
    for column in ("environment", "received_at"):
        op.execute(
            sa.text(
                f"UPDATE finding SET {column} = "
                f"(SELECT m.{column} FROM message m WHERE m.id = finding.message_id) "
                f"WHERE {_FAILING}"
            )
        )
    op.create_index(
        "ix_finding_error_list",
        "finding",
        ["kommune_nr", "environment", "received_at", "message_id", "id"],
        postgresql_where=sa.text(_FAILING),
        sqlite_where=sa.text(_FAILING),
    )
    op.create_index(
        "ix_finding_failing_guid",
        "finding",
        ["kommune_nr", "notification_guid"],
        postgresql_where=sa.text(_FAILING),
        sqlite_where=sa.text(_FAILING),
    )
    # a municipality's messages newest first: replaces the index on kommune_nr alone
    op.create_index("ix_message_kommune_time", "message", ["kommune_nr", "received_at", "id"])
    op.drop_index("ix_message_kommune_nr", table_name="message")
    op.create_table(
        "coverage_total",
        sa.Column("environment", sa.String(20), primary_key=True),
        sa.Column("year", sa.Integer(), primary_key=True),
        sa.Column("kommune_nr", sa.String(4), primary_key=True),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("readable", sa.BigInteger(), nullable=False),
        sa.Column("first_readable_at", _UTC, nullable=True),
        sa.Column("last_readable_at", _UTC, nullable=True),
        sa.Column("best_rank", sa.Integer(), nullable=True),
        sa.Column("accepted", sa.BigInteger(), nullable=False),
        sa.Column("failing", sa.BigInteger(), nullable=False),
        sa.Column("corrected", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "rule_day_total",
        sa.Column("environment", sa.String(20), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("rule_id", sa.String(60), primary_key=True),
        sa.Column("findings", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "totals_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("calendar_sha256", sa.String(64), nullable=False),
        sa.Column("built_at", _UTC, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("totals_state")
    op.drop_table("rule_day_total")
    op.drop_table("coverage_total")
    op.create_index("ix_message_kommune_nr", "message", ["kommune_nr"])
    op.drop_index("ix_message_kommune_time", table_name="message")
    op.drop_index("ix_finding_failing_guid", table_name="finding")
    op.drop_index("ix_finding_error_list", table_name="finding")
    with op.batch_alter_table("finding", schema=None) as batch_op:
        batch_op.drop_column("received_at")
        batch_op.drop_column("environment")
        batch_op.drop_column("corrected_by")
