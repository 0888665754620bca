"""Issue 21, items 4, 5 and 7, through HTTP and the database: a service type judged at the
service's start, resends that renew only times, løpenummer and references of rows KPR
received but did not take, MsgId reuse per environment, dates in Norwegian time, timeliness
per notification, and the deadlines KPR grants single municipalities."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from lxml import etree
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.coverage import build_coverage
from app.content.calendar import OSLO
from app.content.model import EMPTY_GUID, normalize_guid
from app.deadlines import repository as deadline_repo
from app.dev.devpki import DevPki
from app.dev.sample import build_sample
from app.feedback.refresh import refresh_once
from app.models import Finding as FindingRow
from app.models import IplosKommuneState, IplosNotification, Message
from app.platform.settings import Settings
from app.register.models import Hendelse
from tests.integration.conftest import PRODUCTION_HER, THREE_ADDRESSES, served
from tests.integration.test_intake_history import (
    NS,
    PILOT_HER,
    guid,
    head,
    melding,
    send,
    send_head,
    stored,
)

TODAY = dt.datetime.now(OSLO).date()
THIS_YEAR = TODAY.year
LAST_YEAR = THIS_YEAR - 1


@pytest.fixture
def kpr(environments: httpx.AsyncClient) -> httpx.AsyncClient:
    return environments


def edited(content: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(content)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def rows_of(root: etree._Element) -> list[etree._Element]:
    return root.findall(f"{NS}Notifikasjon")


def event_of(notification: etree._Element) -> etree._Element:
    return notification[0]


def bruker_of(notification: etree._Element) -> etree._Element:
    found = notification.find(f".//{NS}Bruker")
    assert found is not None
    return found


async def details(sessions: async_sessionmaker[AsyncSession], rule_id: str) -> list[str]:
    """The details of `rule_id`'s findings of the last message."""
    async with sessions() as s:
        last = await s.scalar(select(Message.id).order_by(Message.id.desc()).limit(1))
        found = await s.scalars(
            select(FindingRow.detail).where(
                FindingRow.message_id == last, FindingRow.rule_id == rule_id
            )
        )
        return list(found)


# --- item 4: a service type code is judged at the service's start -------------------------


def retired_start(seed: int, lopenr: int = 1, previous: str = EMPTY_GUID) -> bytes:
    """One TjenesteStart of tjenesteType 6 (retired) in January 2019, when it was valid."""
    return build_sample(
        1,
        "0301",
        ("retired-type-in-time",),
        seed=seed,
        year=2019,
        start_lopenr=lopenr,
        previous_guid=previous,
    )


def ended(start: bytes, *, lopenr: int, previous: str, day: str = "2021-03-01") -> bytes:
    """The same service (brukerNr, tjenesteID, type) ended on `day`, in a new notification."""

    def change(root: etree._Element) -> None:
        n = rows_of(root)[0]
        n.set("notifikasjonGUID", str(uuid.uuid4()))
        n.set("notifikasjonLopeNr", str(lopenr))
        n.set("notifikasjonForrigeGUID", previous)
        n.set("notifikasjonTid", f"{day}T12:00:00")
        ev = event_of(n)
        ev.tag = f"{NS}TjenesteSlutt"
        ev.set("hendelseGUID", str(uuid.uuid4()))
        ev.set("hendelseDato", day)
        ev.set("hendelseRegTid", f"{day}T12:00:00")

    return edited(start, change)


async def test_a_2021_end_of_a_retired_type_begun_in_2019_is_accepted(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    start = retired_start(21)
    assert (await send(kpr, pki, sessions, start)).rules == set()
    end = ended(start, lopenr=2, previous=guid(start))
    answer = await send(kpr, pki, sessions, end)
    assert (answer.status, answer.rules) == ("1", set())
    async with sessions() as s:
        kinds = list(await s.scalars(select(Hendelse.hendelse_type).order_by(Hendelse.id)))
    assert kinds == ["TjenesteStart", "TjenesteSlutt"]


async def test_the_start_may_come_earlier_or_later_in_the_same_message(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    start = retired_start(22)
    end = ended(start, lopenr=2, previous=guid(start))

    def both(root: etree._Element) -> None:
        # the end first, the start after it: the order in the message does not matter
        root.insert(0, rows_of(etree.fromstring(end))[0])

    answer = await send(kpr, pki, sessions, edited(start, both))
    assert (answer.status, answer.rules) == ("1", set())
    assert len(await stored(sessions)) == 2


async def test_an_end_whose_start_is_unknown_is_accepted_with_a_warning(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    end = ended(retired_start(23), lopenr=1, previous=EMPTY_GUID)
    answer = await send(kpr, pki, sessions, end)
    assert (answer.status, answer.rules) == ("1", {"IPL-TJENESTETYPE-START-UNKNOWN"})
    assert len(await stored(sessions)) == 1
    # a provider change of a service whose 2019 start KPR holds: judged at that start
    start = retired_start(24, lopenr=2, previous=guid(end))
    assert (await send(kpr, pki, sessions, start)).rules == set()

    def provider_changed(root: etree._Element) -> None:
        ev = event_of(rows_of(root)[0])
        ev.tag = f"{NS}TjenesteutforerEndret"
        assert ev.get("tjenesteOrgNr")  # the sample's first row names its provider

    change = edited(
        ended(start, lopenr=3, previous=guid(start), day="2022-05-01"), provider_changed
    )
    answer = await send(kpr, pki, sessions, change)
    assert (answer.status, answer.rules) == ("1", set())


async def test_a_retired_type_is_still_refused_for_a_service_begun_after_its_end(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    def in_2021(root: etree._Element) -> None:
        ev = event_of(rows_of(root)[0])
        ev.set("hendelseDato", "2021-02-01")
        ev.set("hendelseRegTid", "2021-02-01T12:00:00")

    answer = await send(kpr, pki, sessions, edited(retired_start(25), in_2021))
    assert "IPL-TJENESTETYPE-CODE" in answer.rules
    assert any("tjenester som starter etter 31.12.2020" in d for d in answer.ots)


# --- item 5: resends and corrections ------------------------------------------------------


async def test_a_resend_that_renews_only_times_and_pasientguid_is_the_same_notification(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(31, 1, EMPTY_GUID)
    assert (await send(kpr, pki, sessions, first)).status == "1"
    async with sessions() as s:
        before = list(
            (
                await s.execute(
                    select(Hendelse.hendelse_reg_tid, Hendelse.pasient_guid).order_by(Hendelse.id)
                )
            ).all()
        )

    def renewed(root: etree._Element) -> None:
        for n in rows_of(root):
            n.set("notifikasjonTid", "2018-12-24T10:00:00")
            event_of(n).set("hendelseRegTid", "2018-12-24T10:00:00")
            bruker_of(n).set("pasientGUID", str(uuid.uuid4()))

    answer = await send(kpr, pki, sessions, edited(first, renewed))
    assert (answer.status, answer.rules, answer.ots) == ("1", set(), [])
    assert len(await stored(sessions)) == 2
    async with sessions() as s:
        after = list(
            (
                await s.execute(
                    select(Hendelse.hendelse_reg_tid, Hendelse.pasient_guid).order_by(Hendelse.id)
                )
            ).all()
        )
    assert after == before  # the register keeps the first values
    # anything else changed under the same GUID is still another notification
    changed = first.replace(b'tjenesteType="18"', b'tjenesteType="19"')
    assert (await send(kpr, pki, sessions, changed)).rules == {"IPL-GUID-KNOWN"}


def correction_of(original: str, *, seed: int, lopenr: int) -> bytes:
    """An M notification with its own GUID and `lopenr`, naming `original`."""

    def change(root: etree._Element) -> None:
        n = rows_of(root)[0]
        n.set("statusNotifikasjon", "M")
        n.set("notifikasjonRef", original)

    return edited(
        build_sample(1, "0301", seed=seed, start_lopenr=lopenr, previous_guid=original), change
    )


async def test_a_number_received_on_a_dropped_row_is_not_missing_and_the_ref_says_why(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # row 2 has a brukerNr of 101 characters (handling 2: the row is dropped)
    bad = melding(41, 1, EMPTY_GUID, n=2, faults=("IPL-BRUKERNR-FORMAT",))
    assert (await send(kpr, pki, sessions, bad)).rules == {"IPL-BRUKERNR-FORMAT"}
    answer = await send(kpr, pki, sessions, correction_of(guid(bad), seed=42, lopenr=3))
    assert (answer.status, answer.rules) == ("1", {"IPL-REF-UNKNOWN"})
    [detail] = await details(sessions, "IPL-REF-UNKNOWN")
    assert "men ikke tok imot" in detail
    assert "kobles til originalen når den kommer" not in detail
    async with sessions() as s:
        state = await s.get(IplosKommuneState, ("pilot", "0301"))
        assert state is not None
        assert state.received == [[1, 3]]
    # a reference to a notification never received keeps its promise
    never = await send(kpr, pki, sessions, correction_of(str(uuid.uuid4()), seed=43, lopenr=4))
    assert "IPL-REF-UNKNOWN" in never.rules
    [detail] = await details(sessions, "IPL-REF-UNKNOWN")
    assert "kobles til originalen når den kommer" in detail


async def test_numbers_of_a_message_rejected_row_by_row_are_received(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(51, 1, EMPTY_GUID, n=1)
    assert (await send(kpr, pki, sessions, first)).status == "1"
    refused = melding(52, 2, guid(first), n=1, faults=("IPL-BRUKERNR-FORMAT",))
    rejected = await send(kpr, pki, sessions, refused)
    assert (rejected.status, rejected.rules) == ("2", {"IPL-BRUKERNR-FORMAT", "IPL-ALL-DROPPED"})
    third = melding(53, 3, guid(refused), n=1)
    answer = await send(kpr, pki, sessions, third)
    assert "IPL-LOPENR-GAP" not in answer.rules
    assert [n.lopenr for n in await stored(sessions)] == [1, 3]  # nothing else stored


async def test_msgid_reuse_is_judged_per_environment(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    msg_id = str(uuid.uuid4())
    pilot = build_sample(2, "0301", seed=61)
    first = await send_head(kpr, pki, sessions, head(pilot, PILOT_HER, msg_id), PILOT_HER)
    assert first.status == "1"
    # the real report to production, with the MsgId the pilot message had
    real = build_sample(2, "0301", ("IPL-FID-SYNTHETIC",), seed=62)
    production = await send_head(
        kpr, pki, sessions, head(real, PRODUCTION_HER, msg_id), PRODUCTION_HER
    )
    assert "MSGHEAD-MSGID-DUPLICATE" not in production.rules
    assert "E10" not in {e.code for e in production.apprec.errors}
    # within production the MsgId is now used
    other = build_sample(2, "0301", ("IPL-FID-SYNTHETIC",), seed=63, start_lopenr=3)
    reused = await send_head(
        kpr, pki, sessions, head(other, PRODUCTION_HER, msg_id), PRODUCTION_HER
    )
    assert reused.status == "2"
    assert "MSGHEAD-MSGID-DUPLICATE" in reused.rules


# --- item 7: dates and the calendar --------------------------------------------------------


async def test_hendelsedato_is_compared_with_the_norwegian_date_of_hendelseregtid(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    def dated(root: etree._Element) -> None:
        first, second = rows_of(root)
        # 23:30 UTC on 1 November is 00:30 on 2 November in Oslo
        for n, day in ((first, "2018-11-02"), (second, "2018-11-03")):
            event_of(n).set("hendelseDato", day)
            event_of(n).set("hendelseRegTid", "2018-11-01T23:30:00Z")

    content = edited(melding(71, 1, EMPTY_GUID, n=2), dated)
    answer = await send(kpr, pki, sessions, content)
    assert (answer.status, answer.rules) == ("1", {"IPL-HENDELSEDATO-RANGE"})
    async with sessions() as s:
        guids = list(
            await s.scalars(
                select(FindingRow.notification_guid).where(
                    FindingRow.rule_id == "IPL-HENDELSEDATO-RANGE"
                )
            )
        )
    assert guids == [normalize_guid(guid(content, 1))]


def calendar_setting(last_deadline: dt.date, last_correction: dt.date) -> str:
    """Last year with the given deadlines, this year's deadlines ahead."""
    ahead = TODAY + dt.timedelta(days=30)
    return (
        f'{{"{LAST_YEAR}": {{"deadline": "{last_deadline}", '
        f'"correction_deadline": "{last_correction}"}}, '
        f'"{THIS_YEAR}": {{"deadline": "{ahead}", '
        f'"correction_deadline": "{ahead + dt.timedelta(days=30)}"}}}}'
    )


@pytest.fixture
async def after_correction(
    settings_with_pki: Settings, demo_party: int
) -> AsyncIterator[httpx.AsyncClient]:
    """Last year's correction deadline has passed (today plays 1 April)."""
    setting = calendar_setting(TODAY - dt.timedelta(days=20), TODAY - dt.timedelta(days=10))
    update_ = {"receivers": THREE_ADDRESSES, "reporting_calendar": setting}
    async with served(settings_with_pki.model_copy(update=update_)) as c:
        yield c


@pytest.fixture
async def after_deadline(
    settings_with_pki: Settings, demo_party: int
) -> AsyncIterator[httpx.AsyncClient]:
    """Last year's deadline has passed, its correction deadline has not."""
    setting = calendar_setting(TODAY - dt.timedelta(days=10), TODAY + dt.timedelta(days=10))
    update_ = {"receivers": THREE_ADDRESSES, "reporting_calendar": setting}
    async with served(settings_with_pki.model_copy(update=update_)) as c:
        yield c


def real_report(seed: int, n: int, lopenr: int = 1, previous: str = EMPTY_GUID) -> bytes:
    """Last year's notifications as a production address takes them (birth dates; the last
    row's synthetic number is refused there: IPL-FID-SYNTHETIC)."""
    return build_sample(
        n,
        "0301",
        ("IPL-FID-SYNTHETIC",),
        seed=seed,
        year=LAST_YEAR,
        start_lopenr=lopenr,
        previous_guid=previous,
    )


async def test_the_reporting_year_is_decided_per_notification(
    after_correction: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    def one_this_year(root: etree._Element) -> None:
        ev = event_of(rows_of(root)[1])
        ev.set("hendelseDato", f"{THIS_YEAR}-01-01")
        ev.set("hendelseRegTid", f"{THIS_YEAR}-01-01T12:00:00")

    content = edited(real_report(81, 3), one_this_year)
    answer = await send(after_correction, pki, sessions, content, PRODUCTION_HER)
    assert "IPL-CALENDAR-AFTER-CORRECTION" in answer.rules
    [detail] = await details(sessions, "IPL-CALENDAR-AFTER-CORRECTION")
    assert f"1 av 2 notifikasjoner rapporterer for {LAST_YEAR}" in detail


async def test_a_corrected_resend_after_a_rejection_is_a_correction_and_stored_rows_not_late(
    after_deadline: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # before the deadline: row 1 taken, row 2 refused (a synthetic number on production)
    first = real_report(91, 2)
    answer = await send(after_deadline, pki, sessions, first, PRODUCTION_HER)
    assert answer.status == "3"
    earlier = dt.datetime.combine(TODAY - dt.timedelta(days=15), dt.time(12), tzinfo=dt.UTC)
    async with sessions() as s:  # it came in before the deadline
        await s.execute(update(Message).values(received_at=earlier))
        await s.execute(update(FindingRow).values(received_at=earlier))
        await s.commit()

    def corrected(root: etree._Element) -> None:
        _stored_already, fixed = rows_of(root)
        bruker_of(fixed).set("typeID", "9")
        bruker_of(fixed).set("fid", "010150")
        new = etree.fromstring(etree.tostring(fixed))  # and one original never sent before
        new.set("notifikasjonGUID", str(uuid.uuid4()))
        new.set("notifikasjonLopeNr", "3")
        new.set("notifikasjonForrigeGUID", fixed.get("notifikasjonGUID") or "")
        event_of(new).set("hendelseGUID", str(uuid.uuid4()))
        bruker_of(new).set("brukerNr", "B-new")
        root.insert(root.index(fixed) + 1, new)

    resend = await send(after_deadline, pki, sessions, edited(first, corrected), PRODUCTION_HER)
    assert resend.status == "1"
    # row 1 is already stored (not judged), row 2 is the correction, row 3 is late
    [detail] = await details(sessions, "IPL-CALENDAR-LATE")
    assert f"1 av 2 notifikasjoner rapporterer for {LAST_YEAR}" in detail
    assert len(await stored(sessions, "production")) == 3


async def test_a_message_corrected_under_the_msgid_of_a_rejected_one_is_a_correction(
    after_deadline: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    msg_id = str(uuid.uuid4())
    broken = build_sample(
        2, "0301", ("IPL-FID-SYNTHETIC", "IPL-FID-MISSING"), seed=95, year=LAST_YEAR
    )
    rejected = await send_head(
        after_deadline, pki, sessions, head(broken, PRODUCTION_HER, msg_id), PRODUCTION_HER
    )
    assert rejected.status == "2"  # a missing fid rejects the whole message: no row GUIDs kept
    earlier = dt.datetime.combine(TODAY - dt.timedelta(days=15), dt.time(12), tzinfo=dt.UTC)
    async with sessions() as s:
        await s.execute(update(Message).values(received_at=earlier))
        await s.commit()
    fixed = real_report(95, 2)
    answer = await send_head(
        after_deadline, pki, sessions, head(fixed, PRODUCTION_HER, msg_id), PRODUCTION_HER
    )
    assert answer.status == "3"  # its synthetic row is refused on production
    assert not {r for r in answer.rules if "CALENDAR" in r}
    # the same content under a new MsgId is late
    other = real_report(96, 2, lopenr=3)
    late = await send(after_deadline, pki, sessions, other, PRODUCTION_HER)
    assert "IPL-CALENDAR-LATE" in late.rules


async def test_a_granted_deadline_is_used_by_the_intake_and_the_coverage(
    after_deadline: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    late = await send(after_deadline, pki, sessions, real_report(101, 2), PRODUCTION_HER)
    assert "IPL-CALENDAR-LATE" in late.rules
    granted = TODAY + dt.timedelta(days=5)
    async with sessions() as s:
        await deadline_repo.extend(s, "0301", LAST_YEAR, granted)
        await s.commit()
    nxt = real_report(102, 2, lopenr=3, previous=guid(real_report(101, 2), 0))
    answer = await send(after_deadline, pki, sessions, nxt, PRODUCTION_HER)
    assert not {r for r in answer.rules if "CALENDAR" in r}
    async with sessions() as s:
        coverage = await build_coverage(
            s,
            settings.model_copy(
                update={
                    "reporting_calendar": calendar_setting(
                        TODAY - dt.timedelta(days=10), TODAY + dt.timedelta(days=10)
                    )
                }
            ),
            year=LAST_YEAR,
            environment="production",
            now=dt.datetime.now(dt.UTC),
        )
    oslo = next(k for k in coverage.kommuner if k.kommune_nr == "0301")
    assert oslo.on_time is True
    assert not any(k.on_time for k in coverage.kommuner if k.kommune_nr != "0301")
    # the open feedback judges the delivery against the granted deadline too
    calendar = calendar_setting(TODAY - dt.timedelta(days=10), TODAY + dt.timedelta(days=10))
    await refresh_once(sessions, settings.model_copy(update={"reporting_calendar": calendar}))
    params = {"year": str(LAST_YEAR), "environment": "production"}
    overview = (await after_deadline.get("/api/v1/feedback", params=params)).json()
    by = {k["kommune_nr"]: k for k in overview["kommuner"]}
    assert by["0301"]["timeliness"] == "on_time"
    async with sessions() as s:
        assert await deadline_repo.remove(s, "0301", LAST_YEAR)
        await s.commit()
    again = real_report(103, 2, lopenr=5, previous=EMPTY_GUID)
    assert (
        "IPL-CALENDAR-LATE"
        in (await send(after_deadline, pki, sessions, again, PRODUCTION_HER)).rules
    )


async def test_stored_notifications_keep_no_core_digest_only_where_old(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # rows stored before migration 0022 have no core digest: they compare in full
    first = melding(111, 1, EMPTY_GUID)
    await send(kpr, pki, sessions, first)
    async with sessions() as s:
        await s.execute(update(IplosNotification).values(content_core_sha256=None))
        await s.commit()
    assert (await send(kpr, pki, sessions, first)).rules == set()

    def renewed(root: etree._Element) -> None:
        rows_of(root)[0].set("notifikasjonTid", "2018-12-24T10:00:00")

    assert (await send(kpr, pki, sessions, edited(first, renewed))).rules == {"IPL-GUID-KNOWN"}
