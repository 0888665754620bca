"""The reporting year as the read side uses it: the calendar with the standing deadlines, and
the window of received dates that belongs to a year."""

from __future__ import annotations

import dataclasses
import datetime

from app.content.calendar import (
    OSLO,
    ReportingCalendar,
    ReportingYear,
    local_date,
    parse_reporting_calendar,
)
from app.platform.settings import Settings


def calendar_of(settings: Settings) -> ReportingCalendar:
    return dataclasses.replace(parse_reporting_calendar(settings.reporting_calendar), standard=True)


def year_entry(settings: Settings, year: int) -> ReportingYear:
    entry = calendar_of(settings).get(year)
    assert entry is not None  # a standard calendar knows every year
    return entry


def default_year(settings: Settings, now: datetime.datetime) -> int:
    """The year being reported now: last year until its correction deadline, then this one."""
    today = local_date(now)
    previous = year_entry(settings, today.year - 1)
    return today.year - 1 if today <= previous.correction_deadline else today.year


def received_window(entry: ReportingYear) -> tuple[datetime.datetime, datetime.datetime]:
    """Messages received from 1 January of the year (Oslo time) until the end of its
    correction deadline day belong to the year (the next year's first months overlap)."""
    start = datetime.datetime(entry.year, 1, 1, tzinfo=OSLO)
    end_day = entry.correction_deadline + datetime.timedelta(days=1)
    end = datetime.datetime(end_day.year, end_day.month, end_day.day, tzinfo=OSLO)
    return start.astimezone(datetime.UTC), end.astimezone(datetime.UTC)
