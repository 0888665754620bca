"""Rules that need earlier messages of the same municipality, through HTTP and the database:
history per environment, løpenummer as completeness, corrections, reordering, resends and
brukerNr <-> fid. Nothing the standard allows is lost (issue 8)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.apprec.model import AppRec
from app.apprec.parse import parse_apprec
from app.content.model import EMPTY_GUID, normalize_guid
from app.dev.devpki import DevPki
from app.dev.sample import build_sample, wrap_in_msghead
from app.models import Finding as FindingRow
from app.models import (
    IplosBruker,
    IplosEvent,
    IplosKommuneState,
    IplosNotification,
    Message,
    NotificationOutbox,
)
from app.platform.settings import Settings
from tests.integration.conftest import PRODUCTION_HER, TEST_HER, THREE_ADDRESSES, served
from tests.integration.messages import epj_message, post, reply_of
from tests.protector import PROTECTOR

NS = "{http://www.npr.no/xmlstds/56_0_0_ipl}"
PILOT_HER = 131725


@pytest.fixture
def kpr(environments: httpx.AsyncClient) -> httpx.AsyncClient:
    """An intake with a pilot, a test and a production address."""
    return environments


def melding(
    seed: int, start: int, previous: str, n: int = 2, faults: tuple[str, ...] = ()
) -> bytes:
    return build_sample(n, "0301", faults, seed=seed, start_lopenr=start, previous_guid=previous)


def head(content: bytes, to: int = PILOT_HER, msg_id: str | None = None) -> bytes:
    return wrap_in_msghead(
        content,
        8000001,
        to,
        msg_id or str(uuid.uuid4()),
        dt.datetime.now(dt.UTC).replace(microsecond=0),
    )


def notifications(content: bytes) -> list[etree._Element]:
    return etree.fromstring(content).findall(f"{NS}Notifikasjon")


def guid(content: bytes, index: int = -1) -> str:
    value = notifications(content)[index].get("notifikasjonGUID")
    assert value is not None
    return value


def bruker(content: bytes, index: int = 0) -> etree._Element:
    found = notifications(content)[index].find(f".//{NS}Bruker")
    assert found is not None
    return found


@dataclass
class Answer:
    apprec: AppRec
    rules: set[str]

    @property
    def status(self) -> str:
        return self.apprec.status

    @property
    def ots(self) -> list[str]:
        return [e.ot or "" for e in self.apprec.errors]


async def send_head(
    kpr: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    msghead: bytes,
    to: int = PILOT_HER,
) -> Answer:
    reply = reply_of(pki, await post(kpr, epj_message(pki, msghead, to_her=str(to))))
    assert reply.apprec is not None, reply.findings
    async with sessions() as s:
        last = await s.scalar(select(Message.id).order_by(Message.id.desc()).limit(1))
        rows = await s.scalars(select(FindingRow.rule_id).where(FindingRow.message_id == last))
        rules = set(rows)
    return Answer(parse_apprec(reply.apprec), rules)


async def send(
    kpr: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    content: bytes,
    to: int = PILOT_HER,
) -> Answer:
    return await send_head(kpr, pki, sessions, head(content, to), to)


async def stored(
    sessions: async_sessionmaker[AsyncSession], environment: str | None = None
) -> list[IplosNotification]:
    async with sessions() as s:
        query = select(IplosNotification).order_by(IplosNotification.lopenr)
        if environment is not None:
            query = query.where(IplosNotification.environment == environment)
        return list(await s.scalars(query))


async def test_consecutive_messages_continue_the_sequence(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    second = melding(2, 3, guid(first))
    assert (await send(kpr, pki, sessions, first)).status == "1"
    answer = await send(kpr, pki, sessions, second)
    assert (answer.status, answer.rules) == ("1", set())
    async with sessions() as s:
        state = await s.get(IplosKommuneState, ("pilot", "0301"))
        assert state is not None
        assert state.received == [[1, 4]]
        assert await s.scalar(select(func.count()).select_from(IplosEvent)) == 4
    assert [n.lopenr for n in await stored(sessions)] == [1, 2, 3, 4]


async def test_pilot_then_production_keeps_every_notification(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # The letter's plan: the pilot message in November, the real extraction (which repeats
    # the pilot's notifications with the same GUIDs) to the production address in January.
    pilot = build_sample(3, "0301", seed=5)
    assert (await send(kpr, pki, sessions, pilot, PILOT_HER)).status == "1"
    real = build_sample(3, "0301", ("IPL-FID-SYNTHETIC",), seed=5)  # same GUIDs and numbers
    # synthetic identities are not for production: use birth dates for the real report
    production = await send(kpr, pki, sessions, real, PRODUCTION_HER)
    assert production.rules <= {"IPL-FID-SYNTHETIC"}
    assert "IPL-GUID-KNOWN" not in production.rules
    assert "IPL-LOPENR-ORDER" not in production.rules
    prod_rows = await stored(sessions, "production")
    assert [normalize_guid(guid(real, i)) for i in (0, 1)] == [n.guid for n in prod_rows]
    assert len(await stored(sessions, "pilot")) == 3
    # and a test address sees neither
    test = await send(kpr, pki, sessions, pilot, TEST_HER)
    assert (test.status, test.rules) == ("1", set())
    assert len(await stored(sessions, "test")) == 3


async def test_a_reused_lopenr_is_a_warning_and_the_row_is_kept(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    assert (await send(kpr, pki, sessions, first)).status == "1"
    again = melding(2, 2, guid(first, 0))  # løpenummer 2 and 3: 2 was used by another GUID
    answer = await send(kpr, pki, sessions, again)
    assert answer.status == "1"
    assert answer.rules == {"IPL-LOPENR-ORDER"}
    assert len(await stored(sessions)) == 4


async def test_the_same_notifications_resent_are_no_error_and_stored_once(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    assert (await send(kpr, pki, sessions, first)).status == "1"
    # The same notifications again, in a new message with a new MsgId.
    answer = await send(kpr, pki, sessions, first)
    assert (answer.status, answer.rules, answer.ots) == ("1", set(), [])
    assert len(await stored(sessions)) == 2


async def test_a_known_guid_with_other_content_is_dropped(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    assert (await send(kpr, pki, sessions, first)).status == "1"
    changed = first.replace(b'tjenesteType="18"', b'tjenesteType="19"')
    answer = await send(kpr, pki, sessions, changed)
    assert answer.status == "3"
    assert answer.rules == {"IPL-GUID-KNOWN"}
    assert any(normalize_guid(guid(first, 0)) in ot for ot in answer.ots)


async def test_a_dropped_notification_sent_again_corrected_is_accepted(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # typeID 4 is no code (handling 2): the row is dropped; a wrong fid is kept (issue 21)
    bad = melding(1, 1, EMPTY_GUID, n=3, faults=("IPL-TYPEID-CODE",))
    answer = await send(kpr, pki, sessions, bad)
    assert (answer.status, answer.rules) == ("3", {"IPL-TYPEID-CODE"})
    assert len(await stored(sessions)) == 2
    fixed = melding(1, 1, EMPTY_GUID, n=3)  # same seed: same GUIDs, numbers, valid fid
    assert guid(fixed) == guid(bad)
    again = await send(kpr, pki, sessions, fixed)
    assert (again.status, again.rules) == ("1", set())
    assert [n.lopenr for n in await stored(sessions)] == [1, 2, 3]


async def test_a_correction_of_a_dropped_notification_is_accepted(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    bad = melding(1, 1, EMPTY_GUID, n=3, faults=("IPL-TYPEID-CODE",))
    assert (await send(kpr, pki, sessions, bad)).status == "3"
    dropped = guid(bad)
    # An M row with its own GUID and løpenummer 4, pointing at the dropped original (3),
    # carrying the valid content.
    root = etree.fromstring(melding(1, 1, EMPTY_GUID, n=3))
    *earlier, m = root.findall(f"{NS}Notifikasjon")
    for element in earlier:
        root.remove(element)
    m.set("statusNotifikasjon", "M")
    m.set("notifikasjonGUID", str(uuid.uuid4()))
    m.set("notifikasjonRef", dropped)
    m.set("notifikasjonLopeNr", "4")
    m.set("notifikasjonForrigeGUID", dropped)
    answer = await send(kpr, pki, sessions, etree.tostring(root))
    # 3 was received (on the dropped row): not missing (issue 21)
    assert (answer.status, answer.rules) == ("1", {"IPL-REF-UNKNOWN"})
    rows = await stored(sessions)
    assert [(n.lopenr, n.status, n.ref) for n in rows][-1] == (4, "M", normalize_guid(dropped))


async def test_messages_in_reverse_order_are_all_accepted(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    second = melding(2, 3, guid(first))
    later = await send(kpr, pki, sessions, second)  # 3-4 arrive first
    assert (later.status, later.rules) == ("1", set())
    retry = await send(kpr, pki, sessions, first)  # then the retry of 1-2
    assert (retry.status, retry.rules) == ("1", set())
    assert [n.lopenr for n in await stored(sessions)] == [1, 2, 3, 4]
    async with sessions() as s:
        state = await s.get(IplosKommuneState, ("pilot", "0301"))
        assert state is not None
        assert state.received == [[1, 4]]


async def test_a_gap_is_reported_until_the_missing_message_arrives(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    second = melding(2, 3, guid(first))
    third = melding(3, 5, guid(second))
    assert (await send(kpr, pki, sessions, first)).status == "1"
    gap = await send(kpr, pki, sessions, third)  # 3-4 lost on the way
    assert (gap.status, gap.rules) == ("1", {"IPL-LOPENR-GAP"})
    filled = await send(kpr, pki, sessions, second)
    assert (filled.status, filled.rules) == ("1", set())


async def test_brukernr_with_another_fid_is_a_warning_and_a_correction_moves_the_pair(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    assert (await send(kpr, pki, sessions, first)).status == "1"
    second = melding(2, 3, guid(first))
    old_bruker, new_bruker = bruker(first).get("brukerNr"), bruker(second).get("brukerNr")
    assert old_bruker
    assert new_bruker
    old_fid, new_fid = bruker(first).get("fid"), bruker(second).get("fid")
    assert old_fid
    assert new_fid
    # Same brukerNr as a person of the first message, but another fid.
    changed = second.replace(
        f'brukerNr="{new_bruker}"'.encode(), f'brukerNr="{old_bruker}"'.encode()
    )
    answer = await send(kpr, pki, sessions, changed)
    assert (answer.status, answer.rules) == ("1", {"IPL-BRUKERNR-STABLE"})
    assert len(await stored(sessions)) == 4
    async with sessions() as s:
        pair = await s.get(IplosBruker, ("pilot", "0301", old_bruker))
        assert pair is not None
        assert PROTECTOR.open(pair.fid) == old_fid
    correction = changed.replace(
        b'statusNotifikasjon="N"',
        f'statusNotifikasjon="M" notifikasjonRef="{guid(first, 0)}"'.encode(),
        1,
    )
    for n, fresh in ((3, "5"), (4, "6")):
        correction = correction.replace(
            f'notifikasjonLopeNr="{n}"'.encode(), f'notifikasjonLopeNr="{fresh}"'.encode()
        )
    for index in (0, 1):
        correction = correction.replace(guid(second, index).encode(), str(uuid.uuid4()).encode())
    fixed = await send(kpr, pki, sessions, correction)
    assert fixed.status == "1"
    assert "IPL-BRUKERNR-STABLE" in fixed.rules
    async with sessions() as s:
        pair = await s.get(IplosBruker, ("pilot", "0301", old_bruker))
        assert pair is not None
        assert PROTECTOR.open(pair.fid) == new_fid
    assert all(old_fid not in ot and new_fid not in ot for ot in answer.ots + fixed.ots)


async def test_a_person_under_a_new_brukernr_is_a_warning(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    assert (await send(kpr, pki, sessions, first)).status == "1"
    second = melding(2, 3, guid(first))
    old_fid, new_fid = bruker(first).get("fid"), bruker(second).get("fid")
    assert old_fid
    assert new_fid
    moved = second.replace(f'fid="{new_fid}"'.encode(), f'fid="{old_fid}"'.encode())
    answer = await send(kpr, pki, sessions, moved)
    assert (answer.status, answer.ots) == ("1", [])
    assert answer.rules == {"IPL-BRUKERNR-CHANGED"}


async def test_rejected_message_stores_no_history(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    bad = build_sample(2, "0301", faults=("IPL-FID-MISSING",), seed=1)
    assert (await send(kpr, pki, sessions, bad)).status == "2"
    async with sessions() as s:
        state = await s.get(IplosKommuneState, ("pilot", "0301"))
        assert state is None or state.received == []
    assert await stored(sessions) == []


async def test_a_birth_date_never_replaces_the_stored_fodselsnummer(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    assert (await send(kpr, pki, sessions, first)).status == "1"
    person = bruker(first)
    bruker_nr, fid = person.get("brukerNr"), person.get("fid")
    assert bruker_nr is not None
    assert fid is not None
    # The same brukerNr later reported with typeID 9 (a birth date, ddmmyy, not an id); the
    # sample's synthetic numbers carry month + 80.
    birth_date = f"{fid[:2]}{int(fid[2:4]) - 80:02d}{fid[4:6]}"
    second = melding(2, 3, guid(first))
    other = bruker(second)
    other_nr, other_fid = other.get("brukerNr"), other.get("fid")
    assert other_nr is not None
    assert other_fid is not None
    changed = (
        second.replace(f'brukerNr="{other_nr}"'.encode(), f'brukerNr="{bruker_nr}"'.encode())
        .replace(f'fid="{other_fid}"'.encode(), f'fid="{birth_date}"'.encode())
        .replace(b'typeID="1"', b'typeID="9"', 1)
    )
    assert (await send(kpr, pki, sessions, changed)).status == "1"
    async with sessions() as s:
        pair = await s.get(IplosBruker, ("pilot", "0301", bruker_nr))
        assert pair is not None
        assert PROTECTOR.open(pair.fid) == fid


async def test_hendelsedato_with_a_time_zone_is_stored_as_a_date(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    content = build_sample(2, "0301", ("tz-date",), seed=3)
    assert b'hendelseDato="2018-01-01+01:00"' in content
    answer = await send(kpr, pki, sessions, content)
    assert (answer.status, answer.rules) == ("1", set())
    async with sessions() as s:
        days = list(await s.scalars(select(IplosEvent.hendelse_dato).order_by(IplosEvent.id)))
    assert days == [dt.date(2018, 1, 1), dt.date(2018, 1, 2)]


async def test_one_guid_written_two_ways_drops_only_the_second_row(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    content = build_sample(3, "0301", ("IPL-GUID-UNIQUE",), seed=3)
    answer = await send(kpr, pki, sessions, content)
    assert (answer.status, answer.rules) == ("3", {"IPL-GUID-UNIQUE"})
    assert len(answer.apprec.errors) == 1
    assert len(await stored(sessions)) == 2


# --- MsgHead MsgId: reuse after a rejection, identical resends ------------------------------


async def test_a_rejected_msgid_may_be_used_again_for_the_corrected_message(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    msg_id = str(uuid.uuid4())
    bad = build_sample(2, "0301", ("IPL-FID-MISSING",), seed=8)
    assert (await send_head(kpr, pki, sessions, head(bad, msg_id=msg_id))).status == "2"
    good = build_sample(2, "0301", seed=8)
    answer = await send_head(kpr, pki, sessions, head(good, msg_id=msg_id))
    assert (answer.status, answer.rules) == ("1", set())
    # a third, different message with the MsgId of an accepted one is refused (E10)
    other = build_sample(2, "0301", seed=9, start_lopenr=3)
    reused = await send_head(kpr, pki, sessions, head(other, msg_id=msg_id))
    assert reused.status == "2"
    assert {e.code for e in reused.apprec.errors} == {"E10"}


async def test_an_identical_resend_gets_the_stored_apprec_and_stores_nothing_twice(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    document = head(build_sample(3, "0301", ("IPL-TYPEID-CODE",), seed=4))
    first = await send_head(kpr, pki, sessions, document)
    assert first.status == "3"
    # the reply was lost: the MSH sends the same MsgHead in a new ebXML message
    again = await send_head(kpr, pki, sessions, document)
    assert again.apprec.id == first.apprec.id
    assert (again.status, again.ots) == (first.status, first.ots)
    async with sessions() as s:
        statuses = list(await s.scalars(select(Message.status).order_by(Message.id)))
    assert statuses == ["OK_FEIL_I_DELMELDING", "DUPLICATE"]
    assert len(await stored(sessions)) == 2
    async with sessions() as s:
        per_message = dict(
            (
                await s.execute(
                    select(NotificationOutbox.message_id, func.count()).group_by(
                        NotificationOutbox.message_id
                    )
                )
            ).all()
        )
        ids = list(await s.scalars(select(Message.id).order_by(Message.id)))
    assert per_message.get(ids[0], 0) >= 1
    assert ids[1] not in per_message  # no second email for the resend


# --- the reporting calendar -------------------------------------------------------------------

CALENDAR_2018 = (
    '{"2018": {"pilot_from": "2018-11-01", "pilot_to": "2018-12-31", "deadline": "2019-01-15",'
    ' "kostra": "2019-03-15", "correction_deadline": "2019-03-21"}}'
)


@pytest.fixture
async def kpr_2018(
    settings_with_pki: Settings, demo_party: int
) -> AsyncIterator[httpx.AsyncClient]:
    """Three addresses and the letter's calendar for 2018 (received today: all of it past)."""
    update = {"receivers": THREE_ADDRESSES, "reporting_calendar": CALENDAR_2018}
    async with served(settings_with_pki.model_copy(update=update)) as c:
        yield c


async def test_timeliness_is_judged_on_production_by_the_year_reported_for(
    kpr_2018: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # events of 2018 (and one stay begun in 2015): the message reports for 2018
    content = build_sample(3, "0301", ("IPL-FID-SYNTHETIC",), seed=1).replace(
        b'hendelseDato="2018-01-01"', b'hendelseDato="2015-06-01"'
    )
    answer = await send(kpr_2018, pki, sessions, content, PRODUCTION_HER)
    assert "IPL-CALENDAR-AFTER-CORRECTION" in answer.rules
    async with sessions() as s:
        detail = await s.scalar(
            select(FindingRow.detail).where(FindingRow.rule_id == "IPL-CALENDAR-AFTER-CORRECTION")
        )
    assert detail is not None
    assert "rapporterer for 2018" in detail
    assert "21.03.2019" in detail  # the configured date, not a fixed text
    assert "KOSTRA-tallene ble publisert 15.03.2019" in detail
    # a year that is not configured is not judged
    later = build_sample(2, "0301", ("IPL-FID-SYNTHETIC",), seed=2, year=2025)
    assert not {
        r
        for r in (await send(kpr_2018, pki, sessions, later, PRODUCTION_HER)).rules
        if "CALENDAR" in r
    }


async def test_pilot_gets_its_window_and_test_gets_no_calendar(
    kpr_2018: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    content = build_sample(2, "0301", seed=1)
    pilot = await send(kpr_2018, pki, sessions, content, PILOT_HER)
    assert (pilot.status, pilot.rules) == ("1", {"IPL-CALENDAR-PILOT-WINDOW"})
    test = await send(kpr_2018, pki, sessions, content, TEST_HER)
    assert (test.status, test.rules) == ("1", set())
