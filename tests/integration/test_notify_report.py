"""Issue 21 item 10: the email to innsendingsansvarlig tells what the AppRec cannot. Through the
HTTP intake, on SQLite and PostgreSQL, delivered by a real SMTP server (aiosmtpd) and read as
the municipality reads it: late or after the correction deadline, løpenummer missing, warnings
counted per rule, and a message the schema refuses still filed under its municipality and
mailed to its innsendingsansvarlig."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from email.message import EmailMessage

import httpx
import pytest
from lxml import etree
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.devpki import DevPki
from app.dev.devsetup import DEMO_EMAIL
from app.dev.sample import build_sample
from app.models import Finding as FindingRow
from app.models import Message, NotificationOutbox
from app.notify.sender import SmtpConfig, send_due
from app.platform.settings import Settings
from tests.integration.conftest import PRODUCTION_HER, TEST_HER, THREE_ADDRESSES, served
from tests.integration.seed import auth, token
from tests.integration.test_intake_history import CALENDAR_2018, NS, send
from tests.integration.test_notify import Inbox, _text, fid_like, smtp, smtp_config  # noqa: F401

Sessions = async_sessionmaker[AsyncSession]
AFTER_CORRECTION = "kommer ikke med i årets tall"


@pytest.fixture
async def kpr(settings_with_pki: Settings, demo_party: int) -> AsyncIterator[httpx.AsyncClient]:
    """Three addresses and the 2018 calendar (received today: every deadline past)."""
    update = {"receivers": THREE_ADDRESSES, "reporting_calendar": CALENDAR_2018}
    async with served(settings_with_pki.model_copy(update=update)) as c:
        yield c


async def _delivered(
    sessions: Sessions, config: SmtpConfig, inbox: Inbox
) -> tuple[int, dict[str, EmailMessage]]:
    """Send the outbox; the newest message's id and its mails by recipient."""
    await send_due(sessions, config)
    async with sessions() as s:
        newest = await s.scalar(select(Message.id).order_by(Message.id.desc()).limit(1))
        queued = set(
            await s.scalars(
                select(NotificationOutbox.recipient).where(NotificationOutbox.message_id == newest)
            )
        )
    assert newest is not None
    mails = {str(m["To"]): m for m in inbox.messages() if str(m["To"]) in queued}
    assert set(mails) == queued
    return newest, mails


def _without_last_notification(content: bytes) -> bytes:
    root = etree.fromstring(content)
    root.remove(root.findall(f"{NS}Notifikasjon")[-1])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _no_person_data(body: str, content: bytes) -> None:
    root = etree.fromstring(content)
    for b in root.iter(f"{NS}Bruker"):
        for value in (b.get("fid"), b.get("brukerNr")):
            assert not value or value not in body
    for n in root.iter(f"{NS}Notifikasjon"):
        assert (n.get("notifikasjonGUID") or "") not in body
    assert not fid_like(body)


async def test_a_message_after_the_correction_deadline_is_not_said_to_have_no_errors(
    kpr: httpx.AsyncClient,
    pki: DevPki,
    sessions: Sessions,
    smtp: tuple[Inbox, int],  # noqa: F811
    smtp_config: SmtpConfig,  # noqa: F811
) -> None:
    # production: the other notifications carry birth dates (typeID 9); the last, a synthetic
    # number refused on production, is left out, so every row is taken (AppRec status 1)
    content = _without_last_notification(build_sample(3, "0301", ("IPL-FID-SYNTHETIC",), seed=1))
    answer = await send(kpr, pki, sessions, content, PRODUCTION_HER)
    assert (answer.status, answer.apprec.errors) == ("1", ())
    assert "IPL-CALENDAR-AFTER-CORRECTION" in answer.rules

    _, mails = await _delivered(sessions, smtp_config, smtp[0])
    assert "innsending@kommune.example" in mails
    assert DEMO_EMAIL in mails
    for mail in mails.values():
        body = _text(mail)
        assert "(OK, med merknader)" in str(mail["Subject"])
        assert "Status: OK, med merknader" in body
        assert "ingen feil" not in body
        viktig = body.split("Viktig (står ikke i applikasjonskvitteringen):\n", 1)[1]
        first, detail = viktig.splitlines()[:2]
        assert first == (
            "  - Meldingen for rapporteringsåret er mottatt etter fristen for korreksjoner. "
            f"Notifikasjonene er lagret, men {AFTER_CORRECTION}. (IPL-CALENDAR-AFTER-CORRECTION)"
        )
        assert detail.startswith("    ")
        assert "rapporterer for 2018" in detail
        assert "21.03.2019" in detail
        assert "fordelt på regel:\n  IPL-CALENDAR-AFTER-CORRECTION: 1 (" in body
        _no_person_data(body, content)


async def test_lopenummer_gaps_and_other_warnings_are_counted_per_rule(
    kpr: httpx.AsyncClient,
    pki: DevPki,
    sessions: Sessions,
    smtp: tuple[Inbox, int],  # noqa: F811
    smtp_config: SmtpConfig,  # noqa: F811
) -> None:
    # the test address: synthetic numbers allowed, no calendar judged
    content = build_sample(4, "0301", ("IPL-LOPENR-GAP",), seed=3)
    long_text = "x" * 101  # leverandor over 100 characters: IPL-TEXT-LENGTH, a warning
    content = content.replace(
        'leverandor="Leverandør AS"'.encode(), f'leverandor="{long_text}"'.encode()
    )
    content = content.replace(b'navnEPJ="Syntetisk EPJ"', f'navnEPJ="{long_text}"'.encode())
    answer = await send(kpr, pki, sessions, content, TEST_HER)
    assert (answer.status, answer.apprec.errors) == ("1", ())
    assert {"IPL-LOPENR-GAP", "IPL-TEXT-LENGTH"} <= answer.rules

    message_id, mails = await _delivered(sessions, smtp_config, smtp[0])
    body = _text(mails["innsending@kommune.example"])
    assert "ingen feil" not in body
    assert "  - Det mangler løpenummer mellom det laveste og det høyeste" in body
    assert "(IPL-LOPENR-GAP)" in body
    counted = re.findall(r"^  (IPL-[A-Z-]+): (\d+) \(", body, re.MULTILINE)
    assert counted == [("IPL-LOPENR-GAP", "1"), ("IPL-TEXT-LENGTH", "2")]
    assert "Meldingen har 3 merknader (advarsler), fordelt på regel:" in body
    gap = body.split("(IPL-LOPENR-GAP)\n", 1)[1].splitlines()[0]
    sent = {
        int(n.get("notifikasjonLopeNr") or 0)
        for n in etree.fromstring(content).iter(f"{NS}Notifikasjon")
    }
    (missing,) = set(range(min(sent), max(sent) + 1)) - sent
    assert gap.startswith(f"    KPR mangler 1 løpenummer fra kommunen: {missing}.")  # which one
    link = f"Merknadene til denne meldingen (krever tilgang):\nhttp://127.0.0.1:8080/api/v1/messages/{message_id}/findings"
    assert link in body
    assert "Teksten er lengre enn 100 tegn. Verdien er ikke lagret." in body
    assert long_text not in body  # the rule's text, never the value or the finding's detail
    _no_person_data(body, content)


async def test_a_message_without_findings_says_so(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: Sessions,
    smtp: tuple[Inbox, int],  # noqa: F811
    smtp_config: SmtpConfig,  # noqa: F811
) -> None:
    answer = await send(intake, pki, sessions, build_sample(2, "0301", (), seed=4))
    assert (answer.status, answer.rules) == ("1", set())
    _, mails = await _delivered(sessions, smtp_config, smtp[0])
    body = _text(mails[DEMO_EMAIL])
    assert "Meldingen har ingen feil og ingen merknader." in body
    assert "Viktig" not in body
    assert "Status: OK\n" in body


async def test_a_message_the_schema_refuses_is_filed_and_mailed_to_its_innsendingsansvarlig(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: Sessions,
    smtp: tuple[Inbox, int],  # noqa: F811
    smtp_config: SmtpConfig,  # noqa: F811
) -> None:
    content = build_sample(3, "0301", (), seed=5)
    content = content.replace(b' versjon="56.0.0"', b"", 1)  # handling 1: the whole message
    content = content.replace(
        b'meldEpost1="innsending@kommune.example"',
        b'meldEpost1="innsending@kommune.example" meldEpost2="vara@kommune.example"',
    )
    answer = await send(intake, pki, sessions, content)
    assert answer.status == "2"
    assert [e.code for e in answer.apprec.errors] == ["T02"]
    assert answer.rules == {"IPL-XSD"}

    message_id, mails = await _delivered(sessions, smtp_config, smtp[0])
    # the message's type 17 contact (both addresses) and the registered one; no other type
    assert set(mails) == {"innsending@kommune.example", "vara@kommune.example", DEMO_EMAIL}
    for mail in mails.values():
        body = _text(mail)
        assert "Status: Avvist" in body
        assert "T02 (XML validerer ikke): 1" in body
        assert "/api/v1/kommuner/0301/feilliste" in body
        _no_person_data(body, content)
    async with sessions() as s:
        message = await s.get(Message, message_id)
        assert message is not None
        assert message.kommune_nr == "0301"
        filed = list(
            await s.scalars(
                select(FindingRow.kommune_nr).where(FindingRow.message_id == message_id)
            )
        )
    assert filed == ["0301"]

    # the municipality's error list shows it, open until a later message is taken
    oslo = auth(await token(sessions, "oslo", "municipality:0301"))
    url = "/api/v1/kommuner/0301/feilliste"
    rows = (await intake.get(url, headers=oslo, params={"environment": "pilot"})).json()["rows"]
    assert [(r["rule_id"], r["message_id"], r["notification_guid"]) for r in rows] == [
        ("IPL-XSD", message_id, None)
    ]
    assert "attributtet versjon mangler" in rows[0]["detail"]
    assert rows[0]["corrected"] is False
    assert (await send(intake, pki, sessions, build_sample(2, "0301", (), seed=6))).status == "1"
    params = {"environment": "pilot"}
    assert (await intake.get(url, headers=oslo, params=params)).json()["rows"] == []
    every = await intake.get(url, headers=oslo, params={**params, "filter": "all"})
    assert [(r["rule_id"], r["corrected"]) for r in every.json()["rows"]] == [("IPL-XSD", True)]
    csv = await intake.get(url, headers=oslo, params={**params, "filter": "all", "format": "csv"})
    assert csv.status_code == 200
    assert "IPL-XSD" in csv.content.decode("utf-8-sig")


async def test_a_refused_message_naming_another_municipality_is_not_filed_there(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: Sessions,
    smtp: tuple[Inbox, int],  # noqa: F811
    smtp_config: SmtpConfig,  # noqa: F811
) -> None:
    content = build_sample(2, "4601", (), seed=7).replace(b' versjon="56.0.0"', b"", 1)
    answer = await send(intake, pki, sessions, content)
    assert answer.status == "2"
    message_id, mails = await _delivered(sessions, smtp_config, smtp[0])
    async with sessions() as s:
        message = await s.get(Message, message_id)
        assert message is not None
        assert message.kommune_nr is None
        filed = set(
            await s.scalars(
                select(FindingRow.kommune_nr).where(FindingRow.message_id == message_id)
            )
        )
    assert filed == {None}
    assert DEMO_EMAIL in mails  # the sender is still told, by its registered contact
    body = _text(mails[DEMO_EMAIL])
    assert "/api/v1/kommuner/" not in body
