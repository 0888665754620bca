"""The feedback's figures that read the register store (issue 19, docs/register.md) rather
than the history: the users at the reporting year's end, from the service episodes (so an M
correction counts as what it says and a C annulment removes what it annuls), and the
completeness of the Bruker's items the history does not keep (typeID, bydel), from the
`hendelse` rows of the year's messages.

Part of the refresh's repository side (`app/feedback/refresh.py` calls it): only counts
leave these queries. brukerNr is counted (`COUNT(DISTINCT)`, or grouped in a subquery)
inside the database, and neither it nor a fid is ever read into Python. Both SQLite and
PostgreSQL: the one piece that differs is how a temporary stop's JSON is read
(`_stopped_on`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.feedback.codes import AT_HOME, BYDEL_KOMMUNER, LONG_TERM, TYPE_ID_CODES
from app.models import Message
from app.platform.db import is_postgres
from app.register.models import Episode, Hendelse, Melding, Notifikasjon


@dataclass(frozen=True, slots=True)
class Count:
    """One aggregate of one municipality: `feedback_count`'s (kind, key) -> value, total."""

    kommune_nr: str
    kind: str
    key: str
    value: int
    total: int = 0


def year_end(year: int) -> date:
    """The day the year's users are counted on: 31 December (a date in Europe/Oslo, as the
    events' hendelseDato are)."""
    return date(year, 12, 31)


def _active_on(day: date, environment: str, kommuner: Sequence[str] | None) -> list[Any]:
    """Episodes in force on `day`: started on or before it and not ended by it (an episode
    ending on `day` is over). An episode without a known start (a TjenesteSlutt alone, or a
    start annulled) is not active: nothing says the service was given."""
    where = [
        Episode.environment == environment,
        Episode.start_dato.is_not(None),
        Episode.start_dato <= day,
        or_(Episode.slutt_dato.is_(None), Episode.slutt_dato > day),
    ]
    if kommuner is not None:
        where.append(Episode.kommune_nr.in_(list(kommuner)))
    return where


def _stopped_on(day: date, postgres: bool) -> Any:
    """The episode is on a temporary stop on `day`: one of its stops began on or before it
    (`fra_dato`) and had not ended by it (no `til_dato`, or a later one). A stop whose start
    is unknown (a MidlertidigStoppTil alone) does not count. The stops are JSON
    (`episode.midlertidige_stopp`, ISO dates, which compare as text)."""
    iso = day.isoformat()
    fra: Any
    til: Any
    if postgres:
        stops = func.json_array_elements(
            case(
                (
                    func.json_typeof(Episode.midlertidige_stopp) == "array",
                    Episode.midlertidige_stopp,
                ),
                else_=literal_column("'[]'::json"),
            )
        )
        s = stops.table_valued("value").alias("s")
        fra = s.c.value.op("->>")(literal_column("'fra_dato'"))
        til = s.c.value.op("->>")(literal_column("'til_dato'"))
    else:
        s = func.json_each(Episode.midlertidige_stopp).table_valued("value").alias("s")
        fra = func.json_extract(s.c.value, "$.fra_dato")
        til = func.json_extract(s.c.value, "$.til_dato")
    ongoing = or_(til.is_(None), til > iso)
    return exists().select_from(s).where(fra.is_not(None), fra <= iso, ongoing)


async def year_end_counts(
    session: AsyncSession, environment: str, year: int, kommuner: Sequence[str] | None
) -> list[Count]:
    """Per municipality (None: every one) from the episodes active on 31 December of `year`:
    `tjeneste` (distinct users per 9151 code), `tjeneste_stopp` (of them, those whose every
    active episode of that code is on a temporary stop that day: still users of the
    service, shown apart) and `users` (total, long_term, home, other: the classification of
    docs/feedback.md over each user's active episodes)."""
    day = year_end(year)
    active = _active_on(day, environment, kommuner)
    stopped = _stopped_on(day, await is_postgres(session))
    return [
        *await _service_counts(session, active, stopped),
        *await _user_counts(session, active),
    ]


async def _service_counts(session: AsyncSession, active: list[Any], stopped: Any) -> list[Count]:
    """`tjeneste` and `tjeneste_stopp` per municipality and 9151 code."""
    out: list[Count] = []

    per_type = (
        select(
            Episode.kommune_nr.label("k"),
            Episode.tjeneste_type.label("t"),
            func.max(case((stopped, 0), else_=1)).label("receiving"),
        )
        .where(*active, Episode.tjeneste_type.is_not(None))
        .group_by(Episode.kommune_nr, Episode.tjeneste_type, Episode.bruker_nr)
        .subquery()
    )
    for kommune, code, users, on_stop in await _all(
        session,
        select(
            per_type.c.k,
            per_type.c.t,
            func.count(),
            func.coalesce(func.sum(case((per_type.c.receiving == 0, 1), else_=0)), 0),
        ).group_by(per_type.c.k, per_type.c.t),
    ):
        out.append(Count(str(kommune), "tjeneste", str(code), int(users)))
        out.append(Count(str(kommune), "tjeneste_stopp", str(code), int(on_stop or 0)))
    return out


async def _user_counts(session: AsyncSession, active: list[Any]) -> list[Count]:
    """`users` per municipality: total, long_term, home and other."""
    out: list[Count] = []
    service = Episode.tjeneste_type
    long_term = func.max(case((service.in_(sorted(LONG_TERM)), 1), else_=0)).label("lt")
    home = func.max(case((service.in_(sorted(AT_HOME)), 1), else_=0)).label("home")
    per_user = (
        select(Episode.kommune_nr.label("k"), long_term, home)
        .where(*active)
        .group_by(Episode.kommune_nr, Episode.bruker_nr)
        .subquery()
    )
    at_home = case((and_(per_user.c.lt == 0, per_user.c.home == 1), 1), else_=0)
    for kommune, *counts in await _all(
        session,
        select(
            per_user.c.k,
            func.count(),
            func.coalesce(func.sum(per_user.c.lt), 0),
            func.coalesce(func.sum(at_home), 0),
        ).group_by(per_user.c.k),
    ):
        users, lt_users, home_users = (int(x or 0) for x in counts)
        k = str(kommune)
        out.append(Count(k, "users", "total", users))
        out.append(Count(k, "users", "long_term", lt_users))
        out.append(Count(k, "users", "home", home_users))
        out.append(Count(k, "users", "other", users - lt_users - home_users))
    return out


def _bydel_valid(column: Any, postgres: bool) -> Any:
    """Two to six ASCII digits: what IPL-BYDEL-FORMAT accepts (a value it ignores is not
    filled in)."""
    if postgres:
        return column.regexp_match("^[0-9]{2,6}$")
    return and_(
        func.length(column).between(2, 6), ~column.op("GLOB", is_comparison=True)("*[^0-9]*")
    )


async def person_item_counts(
    session: AsyncSession,
    environment: str,
    window: tuple[datetime, datetime],
    kommuner: Sequence[str] | None,
) -> list[Count]:
    """Per municipality the `item` counts of the Bruker's typeID (filled with a code of
    kodeverk 9032, of all events) and, for the municipalities divided into districts,
    bydel (filled with 2 to 6 digits, of all events), over the `hendelse` rows of the
    messages received within `window` (the reporting year's), filed under the message's
    municipality as the rest of the feedback is."""
    start, end = window
    m, h = Message, Hendelse
    districts = m.kommune_nr.in_(sorted(BYDEL_KOMMUNER))
    where = [
        m.environment == environment,
        m.received_at >= start,
        m.received_at < end,
        m.kommune_nr.is_not(None),
    ]
    if kommuner is not None:
        where.append(m.kommune_nr.in_(list(kommuner)))
    out: list[Count] = []
    bydel_ok = _bydel_valid(h.bydel, await is_postgres(session))
    for kommune, events, type_id, with_bydel in await _all(
        session,
        select(
            m.kommune_nr,
            func.count(h.id),
            func.count(case((h.type_id.in_(sorted(TYPE_ID_CODES)), 1))),
            func.count(case((and_(districts, bydel_ok), 1))),
        )
        .select_from(m)
        .join(Melding, Melding.message_id == m.id)
        .join(Notifikasjon, Notifikasjon.melding_id == Melding.id)
        .join(h, h.notifikasjon_id == Notifikasjon.id)
        .where(*where)
        .group_by(m.kommune_nr),
    ):
        k = str(kommune)
        out.append(Count(k, "item", "type_id", int(type_id), int(events)))
        if k in BYDEL_KOMMUNER:
            out.append(Count(k, "item", "bydel", int(with_bydel), int(events)))
    return out


async def _all(session: AsyncSession, statement: Any) -> list[Any]:
    return list((await session.execute(statement)).all())
