"""The reporting calendar: parsing the JSON setting and judging timeliness."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.content.calendar import (
    ReportingCalendar,
    Timeliness,
    parse_reporting_calendar,
    reporting_year,
    timeliness,
)

TEXT = (
    '{"2018": {"pilot_from": "2018-11-01", "pilot_to": "2018-12-31", '
    '"deadline": "2019-01-15", "correction_deadline": "2019-03-21"}}'
)
UTC = datetime.UTC


def _at(y: int, m: int, d: int, h: int = 12) -> datetime.datetime:
    return datetime.datetime(y, m, d, h, tzinfo=UTC)


def test_parse_reads_every_date() -> None:
    cal = parse_reporting_calendar(TEXT)
    entry = cal.get(2018)
    assert entry is not None
    assert entry.pilot_from == datetime.date(2018, 11, 1)
    assert entry.pilot_to == datetime.date(2018, 12, 31)
    assert entry.deadline == datetime.date(2019, 1, 15)
    assert entry.correction_deadline == datetime.date(2019, 3, 21)


def test_deadlines_default_to_15_january_and_21_march() -> None:
    entry = parse_reporting_calendar('{"2020": {}}').get(2020)
    assert entry is not None
    assert (entry.deadline, entry.correction_deadline) == (
        datetime.date(2021, 1, 15),
        datetime.date(2021, 3, 21),
    )


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "{",
        '{"18": {}}',
        '{"2018": {"deadline": "15.01.2019"}}',
        '{"2018": {"deadline": 1}}',
        '{"2018": {"pilot_from": "2018-11-01"}}',
        '{"2018": {"deadline": "2019-04-01", "correction_deadline": "2019-03-21"}}',
        '{"2018": {"frist": "2019-01-15"}}',
        '{"\u0662\u0660\u0661\u0668": {}}',  # 2018 in Arabic-Indic digits
        '{"\uff12\uff10\uff11\uff18": {}}',  # 2018 in full-width digits
    ],
)
def test_bad_calendars_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="calendar"):
        parse_reporting_calendar(text)


@given(st.text(max_size=60))
def test_parser_raises_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        assert isinstance(parse_reporting_calendar(text), ReportingCalendar)


def test_deadline_day_is_on_time_in_oslo_time() -> None:
    cal = parse_reporting_calendar(TEXT)
    # 23:30 UTC on 15 January is already 16 January in Oslo
    assert timeliness(cal, 2018, _at(2019, 1, 15, 22)) is Timeliness.ON_TIME
    assert timeliness(cal, 2018, _at(2019, 1, 15, 23)) is Timeliness.LATE


def test_corrections_are_on_time_until_the_correction_deadline() -> None:
    cal = parse_reporting_calendar(TEXT)
    now = _at(2019, 2, 1)
    assert timeliness(cal, 2018, now) is Timeliness.LATE
    assert timeliness(cal, 2018, now, correction=True) is Timeliness.ON_TIME
    later = _at(2019, 3, 22)
    assert timeliness(cal, 2018, later, correction=True) is Timeliness.AFTER_CORRECTION_DEADLINE


def test_only_configured_years_are_judged_unless_standard() -> None:
    cal = parse_reporting_calendar(TEXT)
    assert timeliness(cal, 2017, _at(2018, 1, 16)) is None
    standard = dataclasses.replace(cal, standard=True)
    assert timeliness(standard, 2017, _at(2018, 1, 15)) is Timeliness.ON_TIME
    assert timeliness(standard, 2017, _at(2018, 1, 16)) is Timeliness.LATE
    assert timeliness(standard, 2017, _at(2018, 3, 22), correction=True) is (
        Timeliness.AFTER_CORRECTION_DEADLINE
    )
    entry = dataclasses.replace(parse_reporting_calendar(""), standard=True).get(2030)
    assert entry is not None
    assert (entry.deadline, entry.kostra_date, entry.correction_deadline, entry.pilot_from) == (
        datetime.date(2031, 1, 15),
        datetime.date(2031, 3, 15),
        datetime.date(2031, 3, 21),
        None,
    )


def test_kostra_date_is_configurable_and_marks_later_data() -> None:
    cal = parse_reporting_calendar('{"2018": {"kostra": "2019-03-10"}}')
    entry = cal.get(2018)
    assert entry is not None
    assert entry.kostra_date == datetime.date(2019, 3, 10)
    assert not entry.after_kostra(datetime.date(2019, 3, 10))
    assert entry.after_kostra(datetime.date(2019, 3, 11))


def test_reporting_year_is_the_latest_event_capped_at_the_year_received() -> None:
    days = [datetime.date(2015, 6, 1), datetime.date(2018, 12, 30)]
    assert reporting_year(days, _at(2019, 1, 10)) == 2018
    assert reporting_year([datetime.date(2099, 1, 1)], _at(2019, 1, 10)) == 2019
    assert reporting_year([None], _at(2019, 1, 10)) is None


def test_a_calendar_without_standing_rule_has_no_verdict_for_other_years() -> None:
    cal = ReportingCalendar(parse_reporting_calendar(TEXT).years, standard=False)
    assert timeliness(cal, 2017, _at(2019, 1, 1)) is None
