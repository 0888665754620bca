"""Issue 21 (items 4, 5, 7) without a database: the service's start, the resend digest,
dates in Norwegian time, timeliness per notification and granted deadlines."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from app.content.calendar import DeadlineExtension, ReportingCalendar, ReportingYear, extended
from app.content.iplos import service_start
from app.content.iplos.timeliness_rows import after_registration, registration_date
from app.content.iplos.validate import validate_melding
from app.content.model import ContentContext, IplosHistory, StoredNotification
from app.dev.sample import build_sample

NS = "{http://www.npr.no/xmlstds/56_0_0_ipl}"


@pytest.mark.parametrize(
    ("value", "day"),
    [
        ("2018-11-01T23:30:00Z", dt.date(2018, 11, 2)),  # 00:30 in Oslo (winter time)
        ("2018-07-01T22:30:00Z", dt.date(2018, 7, 2)),  # 00:30 in Oslo (summer time)
        ("2018-11-01T23:30:00", dt.date(2018, 11, 1)),  # naive: already Oslo time
        ("2018-11-01T23:30:00+01:00", dt.date(2018, 11, 1)),
        ("2018-11-02T00:30:00-03:00", dt.date(2018, 11, 2)),  # 04:30 in Oslo
        ("2018-11-01T23:30:00.123Z", dt.date(2018, 11, 2)),
        ("not a time", None),
        ("2018-02-30T10:00:00", None),
    ],
)
def test_registration_date_is_the_date_in_norway(value: str, day: dt.date | None) -> None:
    assert registration_date(value) == day


def test_after_registration_compares_norwegian_dates() -> None:
    reg = "2018-11-01T23:30:00Z"
    assert not after_registration(dt.date(2018, 11, 2), "2018-11-02", reg)
    assert after_registration(dt.date(2018, 11, 3), "2018-11-03", reg)
    # unreadable values (the schema reports them) compare as written
    assert after_registration(None, "2018-11-03", "2018-11-02x")


def test_an_extension_moves_the_deadline_and_never_earlier() -> None:
    entry = ReportingYear(2018, None, None, dt.date(2019, 1, 15), dt.date(2019, 3, 21))
    granted = (DeadlineExtension("1103", 2018, dt.date(2019, 2, 15)),)
    assert extended(entry, "1103", granted).deadline == dt.date(2019, 2, 15)
    assert extended(entry, "0301", granted) is entry
    late = (DeadlineExtension("1103", 2018, dt.date(2019, 4, 1)),)
    assert extended(entry, "1103", late).correction_deadline == dt.date(2019, 4, 1)
    early = (DeadlineExtension("1103", 2018, dt.date(2019, 1, 1)),)
    assert extended(entry, "1103", early) is entry
    calendar = ReportingCalendar((entry,), extensions=granted)
    found = calendar.for_kommune(2018, "1103")
    assert found is not None
    assert found.deadline == dt.date(2019, 2, 15)
    assert calendar.for_kommune(2019, "1103") is None


def test_which_events_are_judged_at_the_start() -> None:
    assert service_start.needs_start("TjenesteSlutt", "06")
    assert service_start.needs_start("MidlertidigStoppFra", "27")
    assert not service_start.needs_start("TjenesteStart", "6")
    assert not service_start.needs_start("TjenesteSlutt", "18")


def _context(history: IplosHistory | None = None) -> ContentContext:
    return ContentContext(
        now=dt.datetime(2022, 6, 1, 12, tzinfo=dt.UTC),
        allowed_kommuner=frozenset({"0301"}),
        allow_synthetic=True,
        history=history or IplosHistory(),
    )


def _retired_end() -> bytes:
    root = etree.fromstring(build_sample(1, "0301", ("retired-type-in-time",), seed=5, year=2019))
    ev = root.find(f"{NS}Notifikasjon")[0]  # type: ignore[index]
    ev.tag = f"{NS}TjenesteSlutt"
    ev.set("hendelseDato", "2021-03-01")
    ev.set("hendelseRegTid", "2021-03-01T12:00:00")
    return etree.tostring(root)


def test_a_stored_start_decides_a_retired_code() -> None:
    end = _retired_end()
    unknown = validate_melding(end, _context())
    assert [f.rule.id for f in unknown.findings] == ["IPL-TJENESTETYPE-START-UNKNOWN"]
    bruker = etree.fromstring(end).find(f".//{NS}Bruker")
    assert bruker is not None
    key = ("0301", bruker.get("brukerNr") or "", "T5-0")
    begun_2019 = IplosHistory(service_starts={key: dt.date(2019, 1, 1)})
    assert validate_melding(end, _context(begun_2019)).findings == ()
    begun_2021 = IplosHistory(service_starts={key: dt.date(2021, 1, 2)})
    late = validate_melding(end, _context(begun_2021))
    [code] = [f for f in late.findings if f.rule.id == "IPL-TJENESTETYPE-CODE"]
    assert "tjenesten startet 02.01.2021" in code.detail


def test_the_core_digest_leaves_out_only_what_a_resend_renews() -> None:
    first = validate_melding(build_sample(1, "0301", seed=6), _context()).notifications[0]
    stored = IplosHistory(
        notifications={
            first.guid: StoredNotification(
                "N", first.lopenr, first.content_sha256, first.content_core_sha256
            )
        }
    )
    root = etree.fromstring(build_sample(1, "0301", seed=6))
    n = root.find(f"{NS}Notifikasjon")
    assert n is not None
    n.set("notifikasjonTid", "2020-01-01T00:00:00")
    again = validate_melding(etree.tostring(root), _context(stored))
    assert again.findings == ()
    assert again.notifications[0].already_stored
    n[0].set("tjenesteID", "another")
    changed = validate_melding(etree.tostring(root), _context(stored))
    assert "IPL-GUID-KNOWN" in {f.rule.id for f in changed.findings}
    assert not changed.notifications[0].already_stored
