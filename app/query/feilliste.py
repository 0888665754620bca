"""All SQL of a municipality's error list: its failing notifications with person identifiers,
and whether a later accepted notification corrected each; and the findings that rejected one
of its messages without naming a notification (a schema error in the content, issue 21),
corrected once a later message of the municipality was taken."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, exists, literal, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from app.models import MESSAGE_LEVEL_FINDING, Finding, Message, PartyKommune, UtcDateTime
from app.statuses import MessageStatus

# A notification fails when a finding about it drops it, rejects the whole message, or is an
# error on a row kept with it (issue 21): the municipality must correct each.
FAILING = ("drop_notification", "keep_with_error", "reject_message")


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorRow:
    finding_id: int
    message_id: int
    received_at: datetime
    notification_guid: str | None
    lopenr: int | None
    bruker_nr: str | None
    fid: str | None
    rule_id: str
    apprec_code: str | None
    detail: str
    corrected: bool


def failing_in(kommune_nr: str | None = None) -> list[ColumnElement[bool]]:
    """The conditions for a failing-notification finding (of one municipality)."""
    # literal values, so PostgreSQL can match the partial index ix_finding_failing
    failing: BindParameter[list[str]] = bindparam(
        "failing", list(FAILING), expanding=True, literal_execute=True
    )
    conditions: list[ColumnElement[bool]] = [
        Finding.consequence.in_(failing),
        Finding.notification_guid.is_not(None),
    ]
    if kommune_nr is not None:
        conditions.append(Finding.kommune_nr == kommune_nr)
    return conditions


async def error_rows(
    session: AsyncSession,
    kommune_nr: str,
    environment: str,
    received_from: datetime,
    received_to: datetime,
    *,
    open_only: bool,
    after: tuple[datetime, int, int] | None = None,
    limit: int | None = None,
) -> list[ErrorRow]:
    """One row per (failing notification, rule) of the municipality in the window, and one
    per finding that rejected a message of it without naming a notification; oldest first.
    Corrected: a later message of the same environment and municipality stored the same
    GUID, or an M/C notification whose ref is that GUID (`finding.corrected_by`, set by that
    message: app/query/totals.py); a message-level one once a later message of the
    municipality was taken. `after`: the (received_at, message_id, finding_id) of the last
    row of the page before."""
    f = Finding
    corrected = f.corrected_by.is_not(None)
    # one range of ix_finding_error_list (the message's time and environment are copied onto
    # its findings); the message is read only for the rows returned. A finding is listed
    # under the municipality it was filed under (the intake files one only under a
    # municipality the sender may report for), even in a message that names another first.
    query = _columns(corrected).where(
        *failing_in(kommune_nr),
        f.environment == environment,
        f.received_at >= received_from,
        f.received_at < received_to,
    )
    if open_only:
        query = query.where(f.corrected_by.is_(None))
    rows = await _page(session, query, after, limit)
    # one range of ix_finding_message_level: few rows (a rejected message has at most 50)
    later = aliased(Message)
    taken_later = exists().where(
        later.kommune_nr == kommune_nr,
        later.environment == environment,
        later.received_at > f.received_at,
        later.status.in_([MessageStatus.OK.value, MessageStatus.OK_FEIL_I_DELMELDING.value]),
    )
    message_level = _columns(taken_later).where(
        text(MESSAGE_LEVEL_FINDING),
        f.kommune_nr == kommune_nr,
        f.environment == environment,
        f.received_at >= received_from,
        f.received_at < received_to,
    )
    if open_only:
        message_level = message_level.where(~taken_later)
    rows += await _page(session, message_level, after, limit)
    rows.sort(key=lambda r: (r.received_at, r.message_id, r.finding_id))
    return rows if limit is None else rows[:limit]


def _columns(corrected: ColumnElement[bool]) -> Select[*tuple[Any, ...]]:
    f, m = Finding, Message
    return (
        select(
            f.id,
            f.message_id,
            m.received_at,
            f.notification_guid,
            f.bruker_nr,
            f.fid,
            f.rule_id,
            f.apprec_code,
            f.detail,
            corrected.label("corrected"),
            f.lopenr,
        )
        .join(m, m.id == f.message_id)
        .order_by(f.received_at, f.message_id, f.id)
    )


async def _page(
    session: AsyncSession,
    query: Select[*tuple[Any, ...]],
    after: tuple[datetime, int, int] | None,
    limit: int | None,
) -> list[ErrorRow]:
    """The rows of `query` after the keyset `after`, at most `limit`."""
    f = Finding
    if after is not None:
        at, last_message, last_finding = after
        query = query.where(
            tuple_(f.received_at, f.message_id, f.id)
            > tuple_(literal(at, UtcDateTime()), literal(last_message), literal(last_finding))
        )
    if limit is not None:
        query = query.limit(limit)
    rows = (await session.execute(query)).all()
    return [
        ErrorRow(
            finding_id=r[0],
            message_id=r[1],
            received_at=r[2],
            notification_guid=r[3],
            bruker_nr=r[4],
            fid=r[5],
            rule_id=r[6],
            apprec_code=r[7],
            detail=r[8],
            corrected=bool(r[9]),
            lopenr=r._mapping["lopenr"],  # past the ten columns Row's typing spells out
        )
        for r in rows
    ]


async def fid_hidden_for(session: AsyncSession, kommune_nr: str) -> bool:
    """Has KPR withheld person identifiers from this municipality (party registry flag)?"""
    found = await session.scalar(
        select(PartyKommune.id)
        .where(PartyKommune.kommune_nr == kommune_nr, PartyKommune.hide_fid.is_(True))
        .limit(1)
    )
    return found is not None


async def latest_environment(session: AsyncSession, kommune_nr: str) -> str | None:
    """The environment of the municipality's most recent message (what its email linked to)."""
    env: str | None = await session.scalar(
        select(Message.environment)
        .where(Message.kommune_nr == kommune_nr, Message.environment.is_not(None))
        .order_by(Message.id.desc())
        .limit(1)
    )
    return env
