"""Business logic of the intake that no other test reaches, through HTTP on both databases:
MsgHead MsgId reuse, spoofing logged, the person a row-level finding concerns, receiver
environments (test/production addresses) and the MIME/schema caps of the transport."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import structlog
from lxml import etree
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.apprec.model import AppRec
from app.apprec.parse import parse_apprec
from app.dev import devsetup
from app.dev.devpki import DevPki
from app.dev.sample import build_sample, wrap_in_msghead
from app.ebxml.envelope import EB_NS, SOAP_NS
from app.main import create_app
from app.models import Finding as FindingRow
from app.models import IplosNotification, Message
from app.parties import repository as party_repo
from app.platform.logs import configure_logging
from app.platform.settings import Settings
from tests.integration.conftest import PRODUCTION_HER, TEST_HER
from tests.integration.messages import DEMO_HER, epj_message, msghead, post, reply_of
from tests.integration.test_intake_transport import (
    assert_single_error,
    assert_stored_error,
    chained_heads,
    edited_message,
)
from tests.protector import PROTECTOR

IPL = "{http://www.npr.no/xmlstds/56_0_0_ipl}"
MH = "{http://www.kith.no/xmlstds/msghead/2006-05-24}"
OTHER_HER = 8000002  # a second registered municipality (same dev certificates)
OTHER_KOMMUNE = "1103"


# --- helpers --------------------------------------------------------------------------------


def apprec_of(pki: DevPki, r: httpx.Response) -> AppRec:
    assert r.status_code == 200
    reply = reply_of(pki, r)
    assert reply.header is not None
    assert reply.header.action == "APPREC", reply.header.errors
    assert reply.apprec is not None
    return parse_apprec(reply.apprec)


def msg_id_of(head: bytes) -> str:
    found = etree.fromstring(head).find(f"{MH}MsgInfo/{MH}MsgId")
    assert found is not None
    assert found.text
    return found.text


def with_msg_id(head: bytes, msg_id: str) -> bytes:
    old = msg_id_of(head)
    changed = head.replace(f"<MsgId>{old}</MsgId>".encode(), f"<MsgId>{msg_id}</MsgId>".encode())
    assert msg_id_of(changed) == msg_id
    return changed


def notifications(head: bytes) -> list[etree._Element]:
    return list(etree.fromstring(head).iter(f"{IPL}Notifikasjon"))


def fids(head: bytes) -> list[str]:
    return [b.get("fid", "") for b in etree.fromstring(head).iter(f"{IPL}Bruker")]


async def newest(sessions: async_sessionmaker[AsyncSession]) -> tuple[Message, list[FindingRow]]:
    async with sessions() as s:
        message = (await s.scalars(select(Message).order_by(Message.id.desc()).limit(1))).one()
        findings = list(
            await s.scalars(
                select(FindingRow)
                .where(FindingRow.message_id == message.id)
                .order_by(FindingRow.id)
            )
        )
    return message, findings


def rule_ids(findings: list[FindingRow]) -> set[str]:
    return {f.rule_id for f in findings} - {"IPL-CALENDAR-AFTER-CORRECTION"}


@dataclass
class Captured:
    text: str = ""


@contextmanager
def stderr_of_request(capsys: pytest.CaptureFixture[str]) -> Iterator[Captured]:
    """What the app writes to stderr inside the block. The app configures its JSON logs onto
    sys.stderr at startup; do the same now that capsys holds sys.stderr, and afterwards point
    them at the process's stderr (capsys closes its stream before async fixtures stop)."""
    configure_logging("json")
    capsys.readouterr()
    captured = Captured()
    try:
        yield captured
        captured.text = capsys.readouterr().err
    finally:
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__))


def log_lines(err: str) -> list[dict[str, Any]]:
    """The JSON log lines on stderr (other output, if any, is ignored)."""
    lines: list[dict[str, Any]] = []
    for text in err.splitlines():
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines


# --- MsgHead MsgId: unique per sender --------------------------------------------------------


async def test_msgid_reused_by_the_same_sender_is_rejected_with_e10(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    one, two = chained_heads(2)
    first = epj_message(pki, one)
    assert apprec_of(pki, await post(intake, first)).status == "1"
    # A new ebXML message with new content that continues the sequence, but the old MsgId.
    again = epj_message(pki, with_msg_id(two, msg_id_of(one)))
    assert again.message_id != first.message_id
    apprec = apprec_of(pki, await post(intake, again))
    assert (apprec.status, [e.code for e in apprec.errors]) == ("2", ["E10"])
    assert msg_id_of(one) in (apprec.errors[0].ot or "")
    message, findings = await newest(sessions)
    assert message.status == "AVVIST"
    assert rule_ids(findings) == {"MSGHEAD-MSGID-DUPLICATE"}
    # Rejected: the second message's notifications are not stored.
    async with sessions() as s:
        stored = list(await s.scalars(select(IplosNotification.guid)))
    assert len(stored) == len(notifications(one))


async def test_the_same_msgid_from_another_registered_sender_is_accepted(
    intake: httpx.AsyncClient,
    pki: DevPki,
    settings_with_pki: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    spec = devsetup.demo_party(settings_with_pki.pki_dir, her_id=OTHER_HER, kommune=OTHER_KOMMUNE)
    async with sessions() as s:
        await party_repo.upsert_party(s, spec)
        await s.commit()
    (one,) = chained_heads(1)
    assert apprec_of(pki, await post(intake, epj_message(pki, one))).status == "1"
    theirs = wrap_in_msghead(
        build_sample(2, OTHER_KOMMUNE, seed=7),
        OTHER_HER,
        131725,
        msg_id_of(one),
        datetime.now(UTC).replace(microsecond=0),
    )
    r = await post(intake, epj_message(pki, theirs, from_her=str(OTHER_HER)))
    apprec = apprec_of(pki, r)
    assert (apprec.status, apprec.errors) == ("1", ())
    message, findings = await newest(sessions)
    assert message.status == "OK"
    assert message.msghead_msg_id == msg_id_of(one)
    assert "MSGHEAD-MSGID-DUPLICATE" not in rule_ids(findings)


# --- spoofing: MsgHead Sender is not the ebXML From -------------------------------------------


async def test_msghead_sender_other_than_ebxml_from_is_rejected_and_logged_as_spoofing(
    capsys: pytest.CaptureFixture[str],
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    head = msghead(sender_her=8000099)
    with stderr_of_request(capsys) as err:
        r = await post(intake, epj_message(pki, head))
    apprec = apprec_of(pki, r)
    assert apprec.status == "2"
    assert "X99" in [e.code for e in apprec.errors]
    message, findings = await newest(sessions)
    assert message.status == "AVVIST"
    assert "MSGHEAD-SENDER-NOT-EBXML-FROM" in rule_ids(findings)

    lines = log_lines(err.text)
    assert lines, err.text
    spoofing = [line for line in lines if line.get("event") == "security.spoofing_suspected"]
    assert len(spoofing) == 1, lines
    (line,) = spoofing
    assert line["level"] == "warning"
    assert "MSGHEAD-SENDER-NOT-EBXML-FROM" in line["rules"]
    assert line["party_her_id"] == int(DEMO_HER)
    assert line["message_id"] == message.id
    person_ids = [f for f in fids(head) if f]
    assert person_ids
    assert all(fid not in err.text for fid in person_ids)


async def test_a_matching_sender_is_not_logged_as_spoofing(
    capsys: pytest.CaptureFixture[str], intake: httpx.AsyncClient, pki: DevPki
) -> None:
    with stderr_of_request(capsys) as err:
        r = await post(intake, epj_message(pki))
    assert apprec_of(pki, r).status == "1"
    events = [line.get("event") for line in log_lines(err.text)]
    assert "intake.completed" in events
    assert "security.spoofing_suspected" not in events


# --- a row-level finding names its notification and person -----------------------------------


async def test_row_level_finding_is_stored_with_its_person_and_the_apprec_names_only_the_guid(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    melding = build_sample(3, "0301", faults=("IPL-FID-INVALID",))
    head = wrap_in_msghead(
        melding, int(DEMO_HER), 131725, str(uuid.uuid4()), datetime.now(UTC).replace(microsecond=0)
    )
    last = notifications(head)[-1]
    guid = last.get("notifikasjonGUID")
    person = last.find(f".//{IPL}Bruker")
    assert guid is not None
    assert person is not None
    bruker_nr, fid = person.get("brukerNr"), person.get("fid")
    assert bruker_nr is not None
    assert fid is not None

    apprec = apprec_of(pki, await post(intake, epj_message(pki, head)))
    assert (apprec.status, [e.code for e in apprec.errors]) == ("3", ["E31"])
    ot = apprec.errors[0].ot or ""
    assert guid.lower() in ot.lower()
    assert fid not in ot
    message, findings = await newest(sessions)
    assert message.status == "OK_FEIL_I_DELMELDING"
    (row,) = [f for f in findings if f.rule_id == "IPL-FID-INVALID"]
    assert row.notification_guid is not None
    assert row.notification_guid.lower() == guid.lower()
    assert (row.bruker_nr, PROTECTOR.open_optional(row.fid), row.kommune_nr) == (
        bruker_nr,
        fid,
        "0301",
    )
    assert fid not in row.detail
    # fid's type check has handling 9 (issue 21): all three are kept, the faulty one with its
    # error
    async with sessions() as s:
        kept = {g.lower() for g in await s.scalars(select(IplosNotification.guid))}
    assert len(kept) == 3
    assert guid.lower() in kept


# --- receiver environments: which address the message came to ---------------------------------


async def test_message_to_the_test_address_is_tagged_test_and_answered_from_it(
    environments: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    built = epj_message(pki, msghead(receiver_her=TEST_HER), to_her=str(TEST_HER))
    r = await post(environments, built)
    reply = reply_of(pki, r)
    assert reply.header is not None
    assert reply.header.action == "APPREC", reply.header.errors
    assert reply.header.from_party.her_ids == (str(TEST_HER),)
    assert reply.header.to_party.her_ids == (DEMO_HER,)
    assert reply.apprec is not None
    apprec = parse_apprec(reply.apprec)
    assert (apprec.status, apprec.errors) == ("1", ())
    assert apprec.sender.id == str(TEST_HER)
    message, _ = await newest(sessions)
    assert (message.status, message.environment, message.to_party_id) == (
        "OK",
        "test",
        str(TEST_HER),
    )
    metrics = (await environments.get("/metrics")).text
    assert 'kpr_messages_total{environment="test",outcome="OK"} 1.0' in metrics


async def test_synthetic_identities_are_dropped_at_the_production_address(
    environments: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    head = msghead(receiver_her=PRODUCTION_HER)
    # The sample's identities are synthetic: month + 80.
    assert all(int(f[2:4]) > 80 for f in fids(head))
    apprec = apprec_of(
        pki, await post(environments, epj_message(pki, head, to_her=str(PRODUCTION_HER)))
    )
    # every notification is dropped, so the whole message is rejected (IPL-ALL-DROPPED)
    assert apprec.status == "2"
    assert [e.code for e in apprec.errors] == ["X99"] + ["E31"] * len(notifications(head))
    assert apprec.sender.id == str(PRODUCTION_HER)
    message, findings = await newest(sessions)
    assert message.environment == "production"
    assert rule_ids(findings) == {"IPL-FID-SYNTHETIC", "IPL-ALL-DROPPED"}
    assert len(findings_of(findings, "IPL-FID-SYNTHETIC")) == len(notifications(head))
    async with sessions() as s:
        assert list(await s.scalars(select(IplosNotification))) == []


async def test_synthetic_identities_are_accepted_at_the_pilot_address(
    environments: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    head = msghead()
    apprec = apprec_of(pki, await post(environments, epj_message(pki, head)))
    assert (apprec.status, apprec.errors) == ("1", ())
    assert apprec.sender.id == "131725"
    message, findings = await newest(sessions)
    assert message.environment == "pilot"
    assert "IPL-FID-SYNTHETIC" not in rule_ids(findings)
    async with sessions() as s:
        stored = list(await s.scalars(select(IplosNotification)))
    assert len(stored) == len(notifications(head))


def findings_of(findings: list[FindingRow], rule_id: str) -> list[FindingRow]:
    return [f for f in findings if f.rule_id == rule_id]


# --- transport caps over HTTP ------------------------------------------------------------------


def _boundary(content_type: str) -> bytes:
    marker = 'boundary="'
    start = content_type.index(marker) + len(marker)
    return content_type[start : content_type.index('"', start)].encode()


async def test_more_mime_parts_than_the_cap_is_a_mime_problem(
    intake: httpx.AsyncClient,
    pki: DevPki,
    settings_with_pki: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    built = epj_message(pki)
    delim = b"--" + _boundary(built.content_type)
    closing = built.body.rindex(delim + b"--")
    extra = b"".join(
        delim
        + f"\r\nContent-Type: text/plain\r\nContent-ID: <ekstra-{n}@epj>\r\n\r\nx\r\n".encode()
        for n in range(settings_with_pki.max_mime_parts)
    )
    body = built.body[:closing] + extra + built.body[closing:]
    r = await intake.post("/ebms", content=body, headers=built.http_headers)
    error = assert_single_error(r, "EBMS-MIME-TOO-MANY-PARTS", "MimeProblem")
    assert str(settings_with_pki.max_mime_parts) in (error.description or "")
    await assert_stored_error(sessions, r, "EBMS-MIME-TOO-MANY-PARTS")


async def test_mime_parts_at_the_cap_are_accepted(
    settings_with_pki: Settings, demo_party: int, pki: DevPki
) -> None:
    # The message has two parts (SOAP and payload): a cap of two lets it through.
    settings = settings_with_pki.model_copy(update={"max_mime_parts": 2})
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
            assert apprec_of(pki, await post(c, epj_message(pki))).status == "1"


async def test_part_header_larger_than_the_cap_is_a_mime_problem(
    intake: httpx.AsyncClient,
    pki: DevPki,
    settings_with_pki: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    built = epj_message(pki)
    delim = b"--" + _boundary(built.content_type)
    second = built.body.index(delim, built.body.index(delim) + len(delim))
    after_line = built.body.index(b"\r\n", second) + 2
    filler = b"X-Fyll: " + b"a" * settings_with_pki.max_header_bytes + b"\r\n"
    body = built.body[:after_line] + filler + built.body[after_line:]
    r = await intake.post("/ebms", content=body, headers=built.http_headers)
    error = assert_single_error(r, "EBMS-MIME-PART-MALFORMED", "MimeProblem")
    assert "MIME-del 2" in (error.location or "")
    assert str(settings_with_pki.max_header_bytes) in (error.description or "")
    await assert_stored_error(sessions, r, "EBMS-MIME-PART-MALFORMED")


def _unknown_element_in_message_header(root: etree._Element) -> None:
    header = root.find(f"{{{SOAP_NS}}}Header/{{{EB_NS}}}MessageHeader")
    assert header is not None
    etree.SubElement(header, f"{{{EB_NS}}}Ukjent").text = "ikke i skjemaet"


async def test_envelope_that_violates_the_ebms_schema_is_other_xml(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    built = edited_message(pki, _unknown_element_in_message_header)
    assert b"Ukjent" in built.soap  # signed after the edit: only the schema is broken
    r = await post(intake, built)
    error = assert_single_error(r, "EBMS-SCHEMA-INVALID", "OtherXml")
    assert "Ukjent" in (error.description or "")
    await assert_stored_error(sessions, r, "EBMS-SCHEMA-INVALID")
