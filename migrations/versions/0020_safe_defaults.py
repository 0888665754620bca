"""The access log append-only by trigger on both databases; token expiry; redacted AppRecs

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05

Issue 20:
- `access_log`: triggers refuse UPDATE and DELETE on SQLite as on PostgreSQL (0013 covered
  UPDATE only on SQLite), and TRUNCATE on PostgreSQL. The test suite empties its databases
  with the triggers dropped (SQLite) or disabled (PostgreSQL) inside the emptying
  transaction (tests/integration/conftest.py); nothing in the service ever clears the log.
- `api_token.expires_at`: every token expires. Tokens made before this revision expire one
  year after the upgrade (`kpr-mottak tokens create --expires` for new ones).
- `receipt.apprec_redacted_at`: when retention masked brukerNr and fid in the stored AppRec
  text (app/apprec/redact.py); the reply bytes sent stay as they are.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION access_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'access_log is append-only';
END;
$$ LANGUAGE plpgsql
"""
_PG_ROWS = """
CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log
FOR EACH ROW EXECUTE FUNCTION access_log_append_only()
"""
_PG_TRUNCATE = """
CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only()
"""
_SQLITE_UPDATE = """
CREATE TRIGGER IF NOT EXISTS access_log_append_only BEFORE UPDATE ON access_log
BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END
"""
_SQLITE_DELETE = """
CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log
BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END
"""
TOKEN_LIFETIME = timedelta(days=365)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text(_PG_FUNCTION))
        op.execute(sa.text("DROP TRIGGER IF EXISTS access_log_append_only ON access_log"))
        op.execute(sa.text(_PG_ROWS))
        op.execute(sa.text(_PG_TRUNCATE))
    else:
        op.execute(sa.text(_SQLITE_UPDATE))
        op.execute(sa.text(_SQLITE_DELETE))
    op.add_column(
        "api_token", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True)
    )
    token = sa.table("api_token", sa.column("expires_at", sa.DateTime(timezone=True)))
    in_a_year = datetime.now(UTC) + TOKEN_LIFETIME
    if op.get_bind().dialect.name != "postgresql":
        in_a_year = in_a_year.replace(tzinfo=None)  # SQLite keeps UTC without a zone
    op.execute(token.update().where(token.c.expires_at.is_(None)).values(expires_at=in_a_year))
    op.add_column(
        "receipt", sa.Column("apprec_redacted_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("receipt") as batch:
        batch.drop_column("apprec_redacted_at")
    with op.batch_alter_table("api_token") as batch:
        batch.drop_column("expires_at")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text("DROP TRIGGER IF EXISTS access_log_no_truncate ON access_log"))
    else:
        op.execute(sa.text("DROP TRIGGER IF EXISTS access_log_no_delete"))
