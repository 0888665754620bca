"""Dates in Norwegian time and the reporting calendar per notification (issue 21, item 7).

- `hendelseDato` (a date) against `hendelseRegTid` (an instant): the instant's date in
  Europe/Oslo, so `2018-11-01T23:30:00Z` is 2 November (a naive time is already Oslo time).
- Timeliness is judged per notification: a notification reports for the year of its latest
  event (never later than the year received). A notification dated before the first
  configured reporting year is history the extraction carries (a stay begun in 2015 reported
  in the 2018 extraction): it reports for the message's year, the latest of its rows.
  Originals (N) are late after the deadline (the municipality's extended one, if KPR granted
  one); corrections (M, C) and originals KPR received before but did not take (a corrected
  resend after a rejection: `IplosHistory.refused`, or a message with the MsgId of a
  rejected one: `ContentContext.corrects_rejected_at`; when that first receipt was by the
  deadline) are on time until the correction deadline. Rows already stored (an identical
  resend) and rows not taken are not judged.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from typing import Protocol

from app.content.calendar import OSLO, ReportingCalendar, Timeliness, local_date, timeliness
from app.content.iplos import rules as R
from app.content.model import ContentContext
from app.core.findings import Finding, Rule, Subject

_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)


def registration_date(value: str) -> datetime.date | None:
    """The Europe/Oslo date of an xs:dateTime; None when it is not one."""
    m = _DATETIME.fullmatch(value.strip())
    if m is None:
        return None
    try:
        moment = datetime.datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]))
    except ValueError:
        return None
    zone = m[7]
    if zone is None:
        return moment.date()
    if zone == "Z":
        offset = datetime.timedelta(0)
    else:
        sign = -1 if zone[0] == "-" else 1
        offset = sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    aware = moment.replace(tzinfo=datetime.timezone(offset))
    return aware.astimezone(OSLO).date()


def after_registration(when: datetime.date | None, hendelse_dato: str, reg_tid: str) -> bool:
    """hendelseDato later than the date (in Norway) of hendelseRegTid. Values that are not a
    date and an instant (the schema reports them) are compared as written."""
    registered = registration_date(reg_tid)
    if when is None or registered is None:
        return hendelse_dato[:10] > reg_tid[:10]
    return when > registered


class _Event(Protocol):
    @property
    def when(self) -> datetime.date | None: ...


class _Row(Protocol):
    @property
    def guid(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def dropped(self) -> bool: ...
    @property
    def already_stored(self) -> bool: ...
    @property
    def events(self) -> Sequence[_Event]: ...


def _year(row: _Row, now: datetime.datetime) -> int | None:
    latest = max((e.when for e in row.events if e.when is not None), default=None)
    return None if latest is None else min(latest.year, local_date(now).year)


def calendar_findings(rows: Sequence[_Row], unit: str, ctx: ContentContext) -> list[Finding]:
    """The late and after-correction-deadline warnings of a production (or offline) message:
    one per reporting year and rule, counting its notifications."""
    calendar = ctx.calendar
    assert calendar is not None
    judged = [r for r in rows if not r.dropped and not r.already_stored]
    years = {id(r): _year(r, ctx.now) for r in judged}
    message_year = max((y for y in years.values() if y is not None), default=None)
    first = min((y.year for y in calendar.years), default=None)
    counts: dict[tuple[int, str], int] = {}
    by_id: dict[str, Rule] = {}
    for row in judged:
        year = years[id(row)]
        if year is None:
            continue
        if first is not None and year < first and message_year is not None:
            year = message_year
        verdict = _verdict(calendar, row, year, unit, ctx)
        if verdict is None:
            continue
        counts[(year, verdict.id)] = counts.get((year, verdict.id), 0) + 1
        by_id[verdict.id] = verdict
    total = len(judged)
    return [
        _finding(calendar, unit, ctx, year, by_id[rule_id], n, total)
        for (year, rule_id), n in sorted(counts.items())
    ]


def _verdict(
    calendar: ReportingCalendar, row: _Row, year: int, unit: str, ctx: ContentContext
) -> Rule | None:
    entry = calendar.for_kommune(year, unit)
    if entry is None:
        return None
    first = ctx.history.refused.get(row.guid) or ctx.corrects_rejected_at
    resent = first is not None and local_date(first) <= entry.deadline
    t = timeliness(calendar, year, ctx.now, correction=row.status != "N" or resent, kommune_nr=unit)
    if t is Timeliness.LATE:
        return R.CALENDAR_LATE
    if t is Timeliness.AFTER_CORRECTION_DEADLINE:
        return R.CALENDAR_AFTER_CORRECTION
    return None


def _finding(
    calendar: ReportingCalendar,
    unit: str,
    ctx: ContentContext,
    year: int,
    rule: Rule,
    count: int,
    total: int,
) -> Finding:
    entry = calendar.for_kommune(year, unit)
    assert entry is not None
    today = local_date(ctx.now)
    if rule is R.CALENDAR_LATE:
        when, what = entry.deadline, "fristen"
    else:
        when, what = entry.correction_deadline, "fristen for korreksjoner"
    extended = calendar.get(year)
    if extended is not None and entry.deadline != extended.deadline:
        what += " (utsatt for kommunen)"
    kostra = (
        f" KOSTRA-tallene ble publisert {entry.kostra_date:%d.%m.%Y}."
        if entry.after_kostra(today)
        else ""
    )
    who = "Meldingen rapporterer" if count == total else f"{count} av {total} notifikasjoner"
    verb = "" if count == total else " rapporterer"
    return Finding(
        rule,
        "/Melding",
        f"{who}{verb} for {year} og er mottatt {today:%d.%m.%Y}, etter {what} "
        f"{when:%d.%m.%Y}.{kostra}",
        Subject(kommune_nr=unit),
    )
