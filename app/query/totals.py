"""The running totals' read side: what coverage and the statistics read, the windows of the
reporting years, and the row type the writer (app/intake/totals.py) adds to. What each message
adds to coverage (per environment, municipality and reporting year) and to the rule counts (per
UTC day) is written in the message's own transaction by the intake.

Coverage and stats then read a few hundred rows instead of a year of findings (issue 13's
p99 target at 1 000 000 messages). A finding is corrected once, by the first later message
that stores its GUID (or an M/C row whose ref is it); `finding.corrected_by` records which, so
the error list reads a column instead of searching later messages per row.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from app.content.calendar import ReportingCalendar, parse_reporting_calendar
from app.models import (
    CoverageTotal,
    RuleDayTotal,
    TotalsState,
)
from app.query.reporting import received_window

READABLE = ("1", "3")  # AppRec status: KPR could read the message
# best status first: 1 (OK) before 3 (some notifications failed) before 2 (rejected)
RANK = {"1": 1, "3": 2, "2": 3}
STATUS_OF_RANK = {rank: status for status, rank in RANK.items()}
NO_ENVIRONMENT = "-"
_CHUNK = 5000
_T = ColumnElement[Any] | InstrumentedAttribute[Any]


@dataclass(frozen=True, slots=True)
class Windows:
    """The reporting years' windows of received times, from the calendar setting."""

    calendar: ReportingCalendar
    sha256: str

    @classmethod
    def from_setting(cls, text: str) -> Windows:
        calendar = dataclasses.replace(parse_reporting_calendar(text), standard=True)
        return cls(calendar, hashlib.sha256(text.strip().encode()).hexdigest())

    def years_of(self, at: datetime.datetime) -> tuple[int, ...]:
        """The reporting years whose window holds a message received `at` (January to the
        correction deadline belongs to two)."""
        out = []
        for year in (at.year - 1, at.year, at.year + 1):
            entry = self.calendar.get(year)
            if entry is None:
                continue
            start, end = received_window(entry)
            if start <= at < end:
                out.append(year)
        return tuple(out)


@functools.lru_cache(maxsize=4)
def windows_for(calendar_setting: str) -> Windows:
    """Parsed once per setting, not per request."""
    return Windows.from_setting(calendar_setting)


@dataclass(slots=True)
class Total:
    """What some messages add to one coverage_total row."""

    messages: int = 0
    readable: int = 0
    first_readable_at: datetime.datetime | None = None
    last_readable_at: datetime.datetime | None = None
    best_rank: int | None = None
    accepted: int = 0
    failing: int = 0
    corrected: int = 0

    def add_message(self, received_at: datetime.datetime, apprec_status: str | None) -> None:
        self.messages += 1
        rank = RANK.get(apprec_status or "")
        if rank is not None:
            self.best_rank = rank if self.best_rank is None else min(self.best_rank, rank)
        if apprec_status in READABLE:
            self.readable += 1
            first, last = self.first_readable_at, self.last_readable_at
            self.first_readable_at = received_at if first is None else min(first, received_at)
            self.last_readable_at = received_at if last is None else max(last, received_at)


def utc_day(session: AsyncSession, column: _T) -> ColumnElement[str]:
    """YYYY-MM-DD of a stored time, in UTC."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)  # SQLite stores UTC text


# --- the readers ---------------------------------------------------------------------------


async def built(session: AsyncSession) -> bool:
    """Have the totals been built at all (the rule counts do not depend on the calendar)?"""
    return await session.scalar(select(TotalsState.id).where(TotalsState.id == 1)) is not None


async def is_current(session: AsyncSession, windows: Windows) -> bool:
    """Were the totals built (and kept) for this calendar setting?"""
    built = await session.scalar(select(TotalsState.calendar_sha256).where(TotalsState.id == 1))
    return built == windows.sha256


async def coverage_totals(session: AsyncSession, environment: str, year: int) -> dict[str, Total]:
    """Per municipality (Core rows: 422 ORM objects per request cost more than the query)."""
    t = CoverageTotal
    columns = [getattr(t, f.name) for f in dataclasses.fields(Total)]
    rows = await session.execute(
        select(t.kommune_nr, *columns).where(t.environment == environment, t.year == year)
    )
    return {row[0]: Total(*row[1:]) for row in rows.all()}


async def rule_counts(
    session: AsyncSession, environment: str | None, first_day: datetime.date, end_day: datetime.date
) -> dict[str, int]:
    """Findings per rule of the whole UTC days [first_day, end_day)."""
    t = RuleDayTotal
    query = (
        select(t.rule_id, func.sum(t.findings))
        .where(t.day >= first_day.isoformat(), t.day < end_day.isoformat())
        .group_by(t.rule_id)
    )
    if environment is not None:
        query = query.where(t.environment == environment)
    return {rule: int(n) for rule, n in (await session.execute(query)).all()}


def merge_counts(*parts: Iterable[tuple[str, int]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for part in parts:
        for key, count in part:
            out[key] += count
    return dict(sorted(out.items()))
