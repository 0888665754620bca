"""Rules that need earlier messages of the same municipality, through HTTP and the database:
løpenummer order, known GUIDs, corrections pointing at originals, brukerNr <-> fid."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from lxml import etree
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.apprec.parse import parse_apprec
from app.content.iplos.sample import build_sample, wrap_in_msghead
from app.content.model import EMPTY_GUID
from app.models import Finding as FindingRow
from app.models import IplosBruker, IplosKommuneState, IplosNotification, Message
from app.security.devpki import DevPki
from tests.integration.messages import epj_message, post, reply_of

NS = "{http://www.npr.no/xmlstds/56_0_0_ipl}"


def melding(seed: int, start: int, previous: str, notifications: int = 2) -> bytes:
    return build_sample(
        notifications, "0301", seed=seed, start_lopenr=start, previous_guid=previous
    )


def head(content: bytes) -> bytes:
    return wrap_in_msghead(
        content, 8000001, 131725, str(uuid.uuid4()), datetime.now(UTC).replace(microsecond=0)
    )


def notifications(content: bytes) -> list[etree._Element]:
    return etree.fromstring(content).findall(f"{NS}Notifikasjon")


def last_guid(content: bytes) -> str:
    guid = notifications(content)[-1].get("notifikasjonGUID")
    assert guid is not None
    return guid


def bruker(content: bytes, index: int = 0) -> etree._Element:
    found = notifications(content)[index].find(f".//{NS}Bruker")
    assert found is not None
    return found


async def send(intake: httpx.AsyncClient, pki: DevPki, content: bytes) -> tuple[str, list[str]]:
    reply = reply_of(pki, await post(intake, epj_message(pki, head(content))))
    assert reply.apprec is not None
    apprec = parse_apprec(reply.apprec)
    return apprec.status, [e.ot or "" for e in apprec.errors]


async def rules_of_last(sessions: async_sessionmaker[AsyncSession]) -> set[str]:
    async with sessions() as s:
        last = await s.scalar(select(Message.id).order_by(Message.id.desc()).limit(1))
        rows = await s.scalars(select(FindingRow).where(FindingRow.message_id == last))
        return {f.rule_id for f in rows} - {"IPL-CALENDAR-AFTER-CORRECTION"}


async def test_consecutive_messages_continue_the_sequence(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    second = melding(2, 3, last_guid(first))
    assert (await send(intake, pki, first))[0] == "1"
    assert (await send(intake, pki, second))[0] == "1"
    async with sessions() as s:
        state = await s.get(IplosKommuneState, "0301")
        assert state is not None
        assert state.last_lopenr == 4
        assert state.last_guid == last_guid(second)
        assert len(list(await s.scalars(select(IplosNotification)))) == 4


async def test_lopenr_not_after_the_last_one_is_refused(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    assert (await send(intake, pki, first))[0] == "1"
    again = melding(2, 2, last_guid(first))  # løpenummer 2 and 3: 2 was used already
    status, ots = await send(intake, pki, again)
    assert status == "3"
    assert "IPL-LOPENR-ORDER" in await rules_of_last(sessions)
    assert any("IPL-LOPENR-ORDER" in ot for ot in ots)


async def test_a_notification_guid_sent_before_is_known(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    assert (await send(intake, pki, first))[0] == "1"
    # The same notifications again, in a new message: the EPJ resent what KPR already has.
    status, ots = await send(intake, pki, first)
    assert status == "2"  # its only notification is dropped: IPL-ALL-DROPPED
    assert "IPL-GUID-KNOWN" in await rules_of_last(sessions)
    guid = notifications(first)[0].get("notifikasjonGUID")
    assert guid is not None
    assert any(guid.lower() in ot.lower() for ot in ots)


async def test_brukernr_must_keep_its_fid_across_messages(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    assert (await send(intake, pki, first))[0] == "1"
    second = melding(2, 3, last_guid(first))
    old_bruker = bruker(first).get("brukerNr")
    new_bruker = bruker(second).get("brukerNr")
    assert old_bruker
    assert new_bruker
    # Same brukerNr as a person of the first message, but another fid.
    changed = second.replace(
        f'brukerNr="{new_bruker}"'.encode(), f'brukerNr="{old_bruker}"'.encode()
    )
    status, ots = await send(intake, pki, changed)
    assert status == "3"
    assert "IPL-BRUKERNR-STABLE" in await rules_of_last(sessions)
    fid = bruker(first).get("fid")
    assert fid is not None
    assert all(fid not in ot for ot in ots)


async def test_a_person_under_a_new_brukernr_is_a_warning(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    assert (await send(intake, pki, first))[0] == "1"
    second = melding(2, 3, last_guid(first))
    old_fid, new_fid = bruker(first).get("fid"), bruker(second).get("fid")
    assert old_fid
    assert new_fid
    moved = second.replace(f'fid="{new_fid}"'.encode(), f'fid="{old_fid}"'.encode())
    status, ots = await send(intake, pki, moved)
    assert (status, ots) == ("1", [])
    assert await rules_of_last(sessions) == {"IPL-BRUKERNR-CHANGED"}


async def test_rejected_message_does_not_move_the_sequence(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    bad = build_sample(2, "0301", faults=("IPL-FID-MISSING",), seed=1)
    status, _ = await send(intake, pki, bad)
    assert status == "2"
    async with sessions() as s:
        state = await s.get(IplosKommuneState, "0301")
        assert state is None or state.last_lopenr is None
        assert list(await s.scalars(select(IplosNotification))) == []


async def test_a_birth_date_never_replaces_the_stored_fodselsnummer(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = melding(1, 1, EMPTY_GUID)
    assert (await send(intake, pki, first))[0] == "1"
    person = bruker(first)
    bruker_nr, fid = person.get("brukerNr"), person.get("fid")
    assert bruker_nr is not None
    assert fid is not None
    # The same brukerNr later reported with typeID 9 (a birth date, ddmmyy, not an id); the
    # sample's synthetic numbers carry month + 80.
    birth_date = f"{fid[:2]}{int(fid[2:4]) - 80:02d}{fid[4:6]}"
    second = melding(2, 3, last_guid(first))
    other = bruker(second)
    other_nr, other_fid = other.get("brukerNr"), other.get("fid")
    assert other_nr is not None
    assert other_fid is not None
    changed = (
        second.replace(f'brukerNr="{other_nr}"'.encode(), f'brukerNr="{bruker_nr}"'.encode())
        .replace(f'fid="{other_fid}"'.encode(), f'fid="{birth_date}"'.encode())
        .replace(b'typeID="1"', b'typeID="9"', 1)
    )
    status, _ = await send(intake, pki, changed)
    assert status == "1"
    async with sessions() as s:
        stored = await s.get(IplosBruker, ("0301", bruker_nr))
        assert stored is not None
        assert stored.fid == fid
