"""IPLOS history per environment; events in their own table; dates as dates

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Pilot, test and production keep separate histories (løpenummer, GUIDs, brukerNr ↔ fid).
Existing history rows take the environment of the message that stored them; brukerNr pairs,
which do not name their message, are kept for `pilot` (the only address served before this
revision unless KPR_RECEIVERS said otherwise). The løpenummer state becomes the set of
received numbers (ranges), rebuilt from the stored notifications. A notification's events move
to `iplos_event` with `hendelse_dato` as a DATE. The rows are copied in Python so the same
code runs on SQLite and PostgreSQL; history tables are small next to the audit tables.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _rows(sql: str) -> list[Any]:
    return list(op.get_bind().execute(sa.text(sql)).mappings().all())


def _date(text: str | None) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat((text or "")[:10])
    except ValueError:
        return None


def _ranges(numbers: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for n in sorted(set(numbers)):
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


def _reset_sequence(table: str) -> None:
    # Rows were copied with their ids: move PostgreSQL's sequence past them.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            )
        )


def _create_new_tables() -> tuple[sa.Table, sa.Table, sa.Table, sa.Table]:
    state = op.create_table(
        "iplos_kommune_state",
        sa.Column("environment", sa.String(length=20), nullable=False),
        sa.Column("kommune_nr", sa.String(length=4), nullable=False),
        sa.Column("received", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("environment", "kommune_nr", name=op.f("pk_iplos_kommune_state")),
    )
    notification = op.create_table(
        "iplos_notification",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("message_id", _BIG_ID, nullable=False),
        sa.Column("environment", sa.String(length=20), nullable=False),
        sa.Column("kommune_nr", sa.String(length=4), nullable=False),
        sa.Column("guid", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=1), nullable=False),
        sa.Column("lopenr", sa.BigInteger(), nullable=True),
        sa.Column("forrige_guid", sa.String(length=36), nullable=False),
        sa.Column("ref", sa.String(length=36), nullable=True),
        sa.Column("bruker_nr", sa.String(length=100), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message.id"],
            name=op.f("fk_iplos_notification_message_id_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iplos_notification")),
        sa.UniqueConstraint(
            "environment",
            "kommune_nr",
            "guid",
            name=op.f("uq_iplos_notification_environment_kommune_nr_guid"),
        ),
    )
    op.create_index(
        op.f("ix_iplos_notification_message_id"), "iplos_notification", ["message_id"]
    )
    op.create_index(
        "ix_iplos_notification_lopenr",
        "iplos_notification",
        ["environment", "kommune_nr", "lopenr"],
    )
    event = op.create_table(
        "iplos_event",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("notification_id", _BIG_ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("tjeneste_type", sa.String(length=20), nullable=False),
        sa.Column("tjeneste_id", sa.Text(), nullable=False),
        sa.Column("tjeneste_org_nr", sa.String(length=10), nullable=True),
        sa.Column("hendelse_dato", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["iplos_notification.id"],
            name=op.f("fk_iplos_event_notification_id_iplos_notification"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iplos_event")),
    )
    op.create_index(op.f("ix_iplos_event_notification_id"), "iplos_event", ["notification_id"])
    bruker = op.create_table(
        "iplos_bruker",
        sa.Column("environment", sa.String(length=20), nullable=False),
        sa.Column("kommune_nr", sa.String(length=4), nullable=False),
        sa.Column("bruker_nr", sa.String(length=100), nullable=False),
        sa.Column("fid", sa.String(length=11), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "environment", "kommune_nr", "bruker_nr", name=op.f("pk_iplos_bruker")
        ),
    )
    return state, notification, event, bruker


def upgrade() -> None:
    old_notifications = _rows(
        "SELECT n.*, COALESCE(m.environment, 'pilot') AS env FROM iplos_notification n "
        "JOIN message m ON m.id = n.message_id ORDER BY n.id"
    )
    old_brukere = _rows("SELECT kommune_nr, bruker_nr, fid, updated_at FROM iplos_bruker")
    op.drop_index(op.f("ix_iplos_notification_message_id"), table_name="iplos_notification")
    op.drop_table("iplos_notification")
    op.drop_table("iplos_kommune_state")
    op.drop_table("iplos_bruker")
    state, notification, event, bruker = _create_new_tables()

    now = datetime.datetime.now(datetime.UTC)
    numbers: dict[tuple[str, str], list[int]] = {}
    for n in old_notifications:
        if n["lopenr"] is not None:
            numbers.setdefault((n["env"], n["kommune_nr"]), []).append(n["lopenr"])
    op.bulk_insert(
        notification,
        [
            {
                "id": n["id"],
                "message_id": n["message_id"],
                "environment": n["env"],
                "kommune_nr": n["kommune_nr"],
                "guid": n["guid"],
                "status": n["status"],
                "lopenr": n["lopenr"],
                "forrige_guid": n["forrige_guid"],
                "ref": n["ref"],
                "bruker_nr": n["bruker_nr"],
                # not comparable with new digests: a resend of an old row counts as changed
                "content_sha256": hashlib.sha256(b"migrated:" + n["guid"].encode()).hexdigest(),
            }
            for n in old_notifications
        ],
    )
    op.bulk_insert(
        event,
        [
            {
                "notification_id": n["id"],
                "position": 0,
                "kind": n["event"],
                "tjeneste_type": n["tjeneste_type"],
                "tjeneste_id": "",
                "tjeneste_org_nr": None,
                "hendelse_dato": _date(n["hendelse_dato"]),
            }
            for n in old_notifications
        ],
    )
    _reset_sequence("iplos_notification")
    op.bulk_insert(
        state,
        [
            {"environment": env, "kommune_nr": k, "received": _ranges(nums), "updated_at": now}
            for (env, k), nums in numbers.items()
        ],
    )
    op.bulk_insert(
        bruker,
        [{"environment": "pilot", **dict(b), "updated_at": now} for b in old_brukere],
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("msghead_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # Lossy by nature: one history for all environments (the first row of a GUID wins), one
    # event per notification, the date back as text.
    notifications = _rows("SELECT * FROM iplos_notification ORDER BY id")
    events = {
        e["notification_id"]: e
        for e in reversed(_rows("SELECT * FROM iplos_event ORDER BY notification_id, position"))
    }
    brukere = _rows("SELECT kommune_nr, bruker_nr, fid, updated_at FROM iplos_bruker")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("msghead_sha256")
    op.drop_index(op.f("ix_iplos_event_notification_id"), table_name="iplos_event")
    op.drop_table("iplos_event")
    op.drop_index("ix_iplos_notification_lopenr", table_name="iplos_notification")
    op.drop_index(op.f("ix_iplos_notification_message_id"), table_name="iplos_notification")
    op.drop_table("iplos_notification")
    op.drop_table("iplos_kommune_state")
    op.drop_table("iplos_bruker")
    bruker = op.create_table(
        "iplos_bruker",
        sa.Column("kommune_nr", sa.String(length=4), nullable=False),
        sa.Column("bruker_nr", sa.String(length=100), nullable=False),
        sa.Column("fid", sa.String(length=11), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kommune_nr", "bruker_nr", name=op.f("pk_iplos_bruker")),
    )
    op.create_table(
        "iplos_kommune_state",
        sa.Column("kommune_nr", sa.String(length=4), nullable=False),
        sa.Column("last_lopenr", sa.BigInteger(), nullable=True),
        sa.Column("last_guid", sa.String(length=36), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kommune_nr", name=op.f("pk_iplos_kommune_state")),
    )
    notification = op.create_table(
        "iplos_notification",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("message_id", _BIG_ID, nullable=False),
        sa.Column("kommune_nr", sa.String(length=4), nullable=False),
        sa.Column("guid", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=1), nullable=False),
        sa.Column("lopenr", sa.BigInteger(), nullable=True),
        sa.Column("forrige_guid", sa.String(length=36), nullable=False),
        sa.Column("ref", sa.String(length=36), nullable=True),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("tjeneste_type", sa.String(length=4), nullable=False),
        sa.Column("hendelse_dato", sa.String(length=10), nullable=False),
        sa.Column("bruker_nr", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message.id"],
            name=op.f("fk_iplos_notification_message_id_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iplos_notification")),
        sa.UniqueConstraint(
            "kommune_nr", "guid", name=op.f("uq_iplos_notification_kommune_nr_guid")
        ),
    )
    with op.batch_alter_table("iplos_notification", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_iplos_notification_message_id"), ["message_id"], unique=False
        )
    seen: set[tuple[str, str]] = set()
    rows = []
    for n in notifications:
        if (n["kommune_nr"], n["guid"]) in seen:
            continue
        seen.add((n["kommune_nr"], n["guid"]))
        e = events.get(n["id"])
        day = e["hendelse_dato"] if e is not None else None
        rows.append(
            {
                "id": n["id"],
                "message_id": n["message_id"],
                "kommune_nr": n["kommune_nr"],
                "guid": n["guid"],
                "status": n["status"],
                "lopenr": n["lopenr"],
                "forrige_guid": n["forrige_guid"],
                "ref": n["ref"],
                "event": e["kind"] if e is not None else "",
                "tjeneste_type": (e["tjeneste_type"] if e is not None else "")[:4],
                "hendelse_dato": str(day)[:10] if day is not None else "",
                "bruker_nr": n["bruker_nr"],
            }
        )
    op.bulk_insert(notification, rows)
    _reset_sequence("iplos_notification")
    now = datetime.datetime.now(datetime.UTC)
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for b in brukere:
        pairs.setdefault((b["kommune_nr"], b["bruker_nr"]), {**dict(b), "updated_at": now})
    op.bulk_insert(bruker, list(pairs.values()))
