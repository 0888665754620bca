"""The running totals' write side: what each stored message adds to coverage (per
environment, municipality and reporting year) and to the statistics' rule counts (per UTC day),
written in the message's own transaction, and the rebuild from the stored rows.

Beside the intake's store (app/intake/repository.py), its one caller on the write path; the
readers and the shared row type stay in app/query/totals.py (the read side imports nothing from
here). A finding is corrected once, by the first later message that stores its GUID (or an M/C
row whose ref is it); `finding.corrected_by` records which, so the error list reads a column
instead of searching later messages per row.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, case, delete, func, insert, select, text, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlalchemy.sql.elements import ColumnElement

from app.models import (
    CoverageTotal,
    Finding,
    IplosNotification,
    Message,
    Receipt,
    RuleDayTotal,
    TotalsState,
    utcnow,
)
from app.query.feilliste import failing_in
from app.query.totals import NO_ENVIRONMENT, Total, Windows, is_current, utc_day

_CHUNK = 5000
_T = ColumnElement[Any] | InstrumentedAttribute[Any]


_Key = tuple[str, int, str]  # environment, year, kommune_nr


@dataclass(slots=True)
class _Totals:
    windows: Windows
    rows: dict[_Key, Total] = field(default_factory=lambda: defaultdict(Total))

    def at(self, environment: str, kommune_nr: str, received_at: datetime.datetime) -> list[Total]:
        return [self.rows[(environment, y, kommune_nr)] for y in self.windows.years_of(received_at)]


# --- what messages add ------------------------------------------------------------------


def _messages(
    ids: Sequence[int] | None,
) -> Select[str | None, str | None, datetime.datetime, str | None]:
    m, r = Message, Receipt
    query = (
        select(m.environment, m.kommune_nr, m.received_at, r.apprec_status)
        .outerjoin(r, r.message_id == m.id)
        .where(m.environment.is_not(None), m.kommune_nr.is_not(None))
    )
    return query.where(m.id.in_(ids)) if ids is not None else query


def _accepted(ids: Sequence[int] | None) -> Select[str, str, datetime.datetime, int]:
    n, m = IplosNotification, Message
    query = (
        select(n.environment, n.kommune_nr, m.received_at, func.count(n.id))
        .join(m, m.id == n.message_id)
        .group_by(n.message_id, n.environment, n.kommune_nr, m.received_at)
    )
    return query.where(n.message_id.in_(ids)) if ids is not None else query


def _failing(
    ids: Sequence[int] | None,
) -> Select[str | None, str | None, datetime.datetime, int, int]:
    f, m = Finding, Message
    query = (
        select(
            m.environment,
            f.kommune_nr,
            m.received_at,
            func.count(f.id),
            func.count(f.corrected_by),
        )
        .join(m, m.id == f.message_id)
        .where(*failing_in(), f.kommune_nr.is_not(None), m.environment.is_not(None))
        .group_by(f.message_id, m.environment, f.kommune_nr, m.received_at)
    )
    return query.where(f.message_id.in_(ids)) if ids is not None else query


async def _fold(session: AsyncSession, totals: _Totals, ids: Sequence[int] | None) -> None:
    async for env, kommune, at, status in await session.stream(_messages(ids)):
        if env is None or kommune is None:  # excluded by the query
            continue
        for total in totals.at(env, kommune, _aware(at)):
            total.add_message(_aware(at), status)
    for env, kommune, at, count in (await session.execute(_accepted(ids))).all():
        for total in totals.at(env, kommune, _aware(at)):
            total.accepted += int(count)
    for env, kommune, at, failing, corrected in (await session.execute(_failing(ids))).all():
        if env is None or kommune is None:  # excluded by the query
            continue
        for total in totals.at(env, kommune, _aware(at)):
            total.failing += int(failing)
            total.corrected += int(corrected)


def _aware(value: datetime.datetime) -> datetime.datetime:
    return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value


def _dialect_insert(session: AsyncSession) -> type[postgresql.Insert] | type[sqlite.Insert]:
    return postgresql.Insert if session.get_bind().dialect.name == "postgresql" else sqlite.Insert


def _pick(stored: _T, added: _T, wins: ColumnElement[bool]) -> ColumnElement[Any]:
    """For an upsert: the added value where nothing is stored or it wins; either may be NULL."""
    return case((stored.is_(None), added), (added.is_not(None) & wins, added), else_=stored)


async def _add_totals(session: AsyncSession, rows: dict[_Key, Total]) -> None:
    if not rows:
        return
    t = CoverageTotal
    insert = _dialect_insert(session)(t)
    new = insert.excluded
    statement = insert.on_conflict_do_update(
        index_elements=[t.environment, t.year, t.kommune_nr],
        set_={
            "messages": t.messages + new.messages,
            "readable": t.readable + new.readable,
            "accepted": t.accepted + new.accepted,
            "failing": t.failing + new.failing,
            "corrected": t.corrected + new.corrected,
            "first_readable_at": _pick(
                t.first_readable_at,
                new.first_readable_at,
                new.first_readable_at < t.first_readable_at,
            ),
            "last_readable_at": _pick(
                t.last_readable_at, new.last_readable_at, new.last_readable_at > t.last_readable_at
            ),
            "best_rank": _pick(t.best_rank, new.best_rank, new.best_rank < t.best_rank),
        },
    )
    values = [
        {"environment": env, "year": year, "kommune_nr": kommune, **dataclasses.asdict(total)}
        # in key order: concurrent messages lock the rows they share in the same order
        for (env, year, kommune), total in sorted(rows.items())
    ]
    for start in range(0, len(values), _CHUNK):
        await session.execute(statement, values[start : start + _CHUNK])


def _rule_days(session: AsyncSession, ids: Sequence[int] | None) -> Select[str, str, str, int]:
    f, m = Finding, Message
    env = func.coalesce(m.environment, NO_ENVIRONMENT)
    day = utc_day(session, m.received_at)
    query = (
        select(env, day, f.rule_id, func.count(f.id))
        .join(m, m.id == f.message_id)
        .group_by(env, day, f.rule_id)
    )
    return query.where(f.message_id.in_(ids)) if ids is not None else query


async def _add_rule_days(session: AsyncSession, message_id: int) -> None:
    rows = (await session.execute(_rule_days(session, [message_id]))).all()
    if not rows:
        return
    t = RuleDayTotal
    insert = _dialect_insert(session)(t)
    statement = insert.on_conflict_do_update(
        index_elements=[t.environment, t.day, t.rule_id],
        set_={"findings": t.findings + insert.excluded.findings},
    )
    await session.execute(
        statement,
        # in key order: concurrent messages lock the rows they share in the same order
        [
            {"environment": e, "day": d, "rule_id": r, "findings": int(n)}
            for e, d, r, n in sorted(rows)
        ],
    )


# --- corrections --------------------------------------------------------------------------


async def _mark_corrections(
    session: AsyncSession, message_id: int
) -> list[tuple[str, str, datetime.datetime]]:
    """Mark the earlier failing findings this message's accepted notifications correct (same
    GUID, or an M/C row whose ref is it, same environment and municipality); returns the
    environment, municipality and received time of each one that coverage counts."""
    f, n = Finding, IplosNotification
    fm = aliased(Message)
    base = (
        select(f.id, fm.environment, f.kommune_nr, fm.received_at)
        .join(fm, fm.id == f.message_id)
        .join(
            n,
            and_(
                n.message_id == message_id,
                n.kommune_nr == f.kommune_nr,
                n.environment == fm.environment,
            ),
        )
        .where(*failing_in(), f.corrected_by.is_(None), f.message_id < message_id)
    )
    found: dict[int, tuple[str, str, datetime.datetime] | None] = {}
    for query in (
        base.where(f.notification_guid == n.guid),
        base.where(f.notification_guid == n.ref, n.status.in_(("M", "C"))),
    ):
        for finding_id, env, kommune, at in (await session.execute(query)).all():
            counted = None if env is None or kommune is None else (env, kommune, _aware(at))
            found[finding_id] = counted
    ids = sorted(found)  # one lock order for concurrent writers
    for start in range(0, len(ids), _CHUNK):
        await session.execute(
            update(f).where(f.id.in_(ids[start : start + _CHUNK])).values(corrected_by=message_id)
        )
    return [v for v in found.values() if v is not None]


async def _recompute_corrections(session: AsyncSession) -> None:
    """corrected_by for every failing finding from the stored rows: the first later message
    of the same environment and municipality that stored its GUID or an M/C row whose ref is
    it. Set-based (one join, UPDATE ... FROM), writing only the rows that change."""
    f, n = Finding, IplosNotification

    def later(match: ColumnElement[bool]) -> Select[int, int]:
        return (
            select(f.id.label("finding_id"), n.message_id.label("by"))
            .join(
                n,
                and_(
                    match,
                    n.environment == f.environment,  # copied from the finding's message
                    n.kommune_nr == f.kommune_nr,
                    n.message_id > f.message_id,
                ),
            )
            .where(*failing_in())
        )

    matches = union_all(
        later(n.guid == f.notification_guid),
        later(and_(n.ref == f.notification_guid, n.status.in_(("M", "C")))),
    ).subquery()
    first = (
        select(matches.c.finding_id, func.min(matches.c.by).label("by"))
        .group_by(matches.c.finding_id)
        .subquery()
    )
    await session.execute(update(f).where(f.corrected_by.is_not(None)).values(corrected_by=None))
    await session.execute(
        update(f).where(f.id == first.c.finding_id).values(corrected_by=first.c.by)
    )


# --- the two writers -------------------------------------------------------------------------


async def record_message(session: AsyncSession, message_id: int, windows: Windows) -> None:
    """Add one stored message (its receipt, findings and accepted notifications flushed) to
    the totals, in its own transaction, and mark what it corrects."""
    corrected = await _mark_corrections(session, message_id)
    totals = _Totals(windows)
    await _fold(session, totals, [message_id])
    for env, kommune, at in corrected:
        for total in totals.at(env, kommune, at):
            total.corrected += 1
    await _add_totals(session, totals.rows)
    await _add_rule_days(session, message_id)


async def rebuild(session: AsyncSession, windows: Windows) -> None:
    """Recompute corrections and totals from the stored rows (after a migration, or another
    calendar setting). On PostgreSQL the totals are locked meanwhile, so a message stored
    concurrently adds to the rebuilt totals instead of being lost or counted twice."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("LOCK TABLE coverage_total, rule_day_total, totals_state IN EXCLUSIVE MODE")
        )
    await _recompute_corrections(session)
    await session.execute(delete(CoverageTotal))
    totals = _Totals(windows)
    await _fold(session, totals, None)
    await _add_totals(session, totals.rows)
    await session.execute(delete(RuleDayTotal))
    t = RuleDayTotal
    await session.execute(
        insert(t).from_select(
            [t.environment, t.day, t.rule_id, t.findings], _rule_days(session, None)
        )
    )
    await session.execute(delete(TotalsState))
    session.add(TotalsState(id=1, calendar_sha256=windows.sha256, built_at=utcnow()))
    await session.flush()


async def rebuild_if_stale(session: AsyncSession, windows: Windows) -> bool:
    if await is_current(session, windows):
        return False
    await rebuild(session, windows)
    return True
