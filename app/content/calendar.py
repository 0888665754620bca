"""The reporting calendar: per reporting year the pilot window, the deadline (15 January of
the next year), the KOSTRA publication (15 March) and the correction deadline (21 March).
Loaded from configuration as JSON; the dates are configuration, never code (the pilot window
and a deadline were moved in 2018-2019).

Timeliness (decision, following the letter): a notification is judged by the Europe/Oslo
date it was received against the reporting year *it reports for* (per notification since
issue 21: app/content/iplos/timeliness_rows.py): the year of its latest event, but never later
than the year it was received. Only configured years are judged, and only on production
addresses (pilot and test messages are not reports). A deadline day counts as on time.
Originals (N) are late after the deadline (a municipality's granted deadline, when KPR gave it
one: `DeadlineExtension`); corrections (M, C) are on time until the correction deadline, which
exists for them. Anything after the correction deadline is "after correction deadline". All of
this is a warning: the data is still stored; the feedback pages report timeliness and mark
what came after the KOSTRA publication.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

_YEAR = re.compile(r"[0-9]{4}")  # ASCII digits only

OSLO = ZoneInfo("Europe/Oslo")


class Timeliness(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    AFTER_CORRECTION_DEADLINE = "after_correction_deadline"


@dataclass(frozen=True, slots=True)
class ReportingYear:
    year: int
    pilot_from: datetime.date | None
    pilot_to: datetime.date | None
    deadline: datetime.date
    correction_deadline: datetime.date
    kostra: datetime.date | None = None  # KOSTRA figures published (15 March by default)

    @property
    def kostra_date(self) -> datetime.date:
        return self.kostra or datetime.date(self.year + 1, 3, 15)

    def after_kostra(self, day: datetime.date) -> bool:
        """Data received after the KOSTRA publication is not in the published figures."""
        return day > self.kostra_date


@dataclass(frozen=True, slots=True)
class DeadlineExtension:
    """A later deadline KPR granted one municipality for one reporting year (15 February 2019
    for some in the pilot year): `kpr-mottak calendar extend`, stored in the database."""

    kommune_nr: str
    year: int
    until: datetime.date


@dataclass(frozen=True, slots=True)
class ReportingCalendar:
    """Configured reporting years; with `standard` every other year gets the standing
    deadlines, 15 January and 21 March of the following year, and no pilot window (the
    feedback pages use that; the intake judges configured years only). `extensions`: the
    municipalities' later deadlines (`for_kommune`)."""

    years: tuple[ReportingYear, ...] = ()
    standard: bool = False
    extensions: tuple[DeadlineExtension, ...] = ()

    def for_kommune(self, year: int, kommune_nr: str | None) -> ReportingYear | None:
        """The year as it applies to one municipality: its extended deadline in place of the
        ordinary one (and the correction deadline never before it)."""
        entry = self.get(year)
        if entry is None or kommune_nr is None:
            return entry
        return extended(entry, kommune_nr, self.extensions)

    def pilot_windows(self) -> tuple[tuple[datetime.date, datetime.date], ...]:
        return tuple(
            (y.pilot_from, y.pilot_to)
            for y in self.years
            if y.pilot_from is not None and y.pilot_to is not None
        )

    def get(self, year: int) -> ReportingYear | None:
        for y in self.years:
            if y.year == year:
                return y
        if self.standard:
            return ReportingYear(
                year, None, None, datetime.date(year + 1, 1, 15), datetime.date(year + 1, 3, 21)
            )
        return None


def extended(
    entry: ReportingYear, kommune_nr: str, extensions: Iterable[DeadlineExtension]
) -> ReportingYear:
    """`entry` with the municipality's extended deadline, if it has one for the year (the
    latest, should there be several); an extension never moves a deadline earlier."""
    until = max(
        (e.until for e in extensions if e.kommune_nr == kommune_nr and e.year == entry.year),
        default=None,
    )
    if until is None or until <= entry.deadline:
        return entry
    return dataclasses.replace(
        entry, deadline=until, correction_deadline=max(entry.correction_deadline, until)
    )


def local_date(now: datetime.datetime) -> datetime.date:
    """The Europe/Oslo calendar date of `now` (naive datetimes are taken as Oslo time)."""
    if now.tzinfo is None:
        return now.date()
    return now.astimezone(OSLO).date()


def _date(
    obj: Mapping[str, object], key: str, year: str, *, required: bool
) -> datetime.date | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ValueError(f"reporting calendar {year}: '{key}' is missing")
        return None
    if not isinstance(value, str):
        raise ValueError(f"reporting calendar {year}: '{key}' must be a date string")
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"reporting calendar {year}: '{key}' is not YYYY-MM-DD") from exc


def parse_reporting_calendar(text: str) -> ReportingCalendar:
    """Parse `{"2018": {"pilot_from": "2018-11-01", "pilot_to": "2018-12-31",
    "deadline": "2019-01-15", "kostra": "2019-03-15", "correction_deadline": "2019-03-21"}}`.
    Raises ValueError.

    `deadline`, `kostra` and `correction_deadline` default to 15 January, 15 March and
    21 March of the next year; the pilot window is optional."""
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"reporting calendar is not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ValueError("reporting calendar must be a JSON object keyed by year")
    years: list[ReportingYear] = []
    for key, obj in data.items():
        if not (isinstance(key, str) and _YEAR.fullmatch(key)):
            raise ValueError(f"reporting calendar: '{key}' is not a year")
        if not isinstance(obj, dict):
            raise ValueError(f"reporting calendar {key}: must be an object")
        unknown = set(obj) - {"pilot_from", "pilot_to", "deadline", "kostra", "correction_deadline"}
        if unknown:
            raise ValueError(f"reporting calendar {key}: unknown keys {sorted(unknown)}")
        year = int(key)
        pilot_from = _date(obj, "pilot_from", key, required=False)
        pilot_to = _date(obj, "pilot_to", key, required=False)
        if (pilot_from is None) != (pilot_to is None):
            raise ValueError(f"reporting calendar {key}: give both pilot_from and pilot_to")
        deadline = _date(obj, "deadline", key, required=False) or datetime.date(year + 1, 1, 15)
        correction = _date(obj, "correction_deadline", key, required=False) or datetime.date(
            year + 1, 3, 21
        )
        if correction < deadline:
            raise ValueError(f"reporting calendar {key}: correction_deadline before deadline")
        kostra = _date(obj, "kostra", key, required=False)
        if pilot_from and pilot_to and pilot_to < pilot_from:
            raise ValueError(f"reporting calendar {key}: pilot_to before pilot_from")
        years.append(ReportingYear(year, pilot_from, pilot_to, deadline, correction, kostra))
    return ReportingCalendar(tuple(sorted(years, key=lambda y: y.year)))


def reporting_year(
    event_dates: Iterable[datetime.date | None], received: datetime.datetime
) -> int | None:
    """The year a message reports for: its latest event's year, capped at the year it was
    received (an event dated in the future belongs to no later report). None without dates."""
    latest = max((d for d in event_dates if d is not None), default=None)
    if latest is None:
        return None
    return min(latest.year, local_date(received).year)


def timeliness(
    calendar: ReportingCalendar,
    year: int,
    now: datetime.datetime,
    *,
    correction: bool = False,
    kommune_nr: str | None = None,
) -> Timeliness | None:
    """On time, late or after the correction deadline for data of reporting `year` received at
    `now` (from `kommune_nr`: its extended deadline counts); None when the calendar does not
    know the year."""
    entry = calendar.for_kommune(year, kommune_nr)
    if entry is None:
        return None
    today = local_date(now)
    if today > entry.correction_deadline:
        return Timeliness.AFTER_CORRECTION_DEADLINE
    if today > entry.deadline and not correction:
        return Timeliness.LATE
    return Timeliness.ON_TIME
