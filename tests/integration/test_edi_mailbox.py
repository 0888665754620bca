"""The EDI channel against real mail servers (second tier, marker `mail`): Dovecot holds KPR's
mailboxes, read by IMAP and by POP3 over TLS (the test CA), aiosmtpd is the relay replies leave
by (issue 25, "Done when")."""

from __future__ import annotations

import asyncio
import email
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message as MailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.apprec.parse import parse_apprec
from app.dev.client import ReadReply, read_reply
from app.dev.devpki import DevPki
from app.edi import runner as edi_runner
from app.edi.pop3 import Pop3Mailbox
from app.edi.runner import EdiRunner
from app.edi.sender import RelayConfig, send_due
from app.models import Message, MessageDedup
from app.platform.settings import Settings
from tests.integration.edi_servers import Dovecot, Relay, running_dovecot, running_relay
from tests.integration.edi_support import (
    MUNICIPALITY_ADDRESS,
    PILOT_BOX,
    ebxml_message_mail,
    edi_settings,
    edi_state,
    mailbox_entry,
    register_municipality,
)
from tests.integration.messages import msghead
from tests.protector import REGISTER_SETTINGS

pytestmark = pytest.mark.mail

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot() as server:
        yield server


@pytest.fixture(params=["imap", "pop3s"])
def scheme(request: pytest.FixtureRequest) -> str:
    """How KPR reads the mailboxes: IMAP, and POP3 over TLS verified with the test CA."""
    return str(request.param)


@pytest.fixture
def relay() -> Iterator[Relay]:
    with running_relay() as server:
        yield server


@pytest.fixture
def empty_mailboxes(dovecot: Dovecot) -> Dovecot:
    for user in ("kpr-pilot", "kpr-test"):
        imap = dovecot.session(user)
        imap.store("1:*", "+FLAGS.SILENT", r"(\Deleted)") if dovecot.count(user) else None
        imap.expunge()
        imap.logout()
    return dovecot


MailSettings = Callable[..., Settings]


@pytest.fixture
def mail_settings(
    settings_with_pki: Settings,
    tmp_path: Path,
    empty_mailboxes: Dovecot,
    relay: Relay,
    scheme: str,
) -> MailSettings:
    """KPR's settings for the test: its empty mailboxes read by `scheme` (a test of one
    protocol parametrizes `scheme` itself), replies by the relay; keywords add settings."""

    def make(**more: object) -> Settings:
        return _settings(settings_with_pki, tmp_path, empty_mailboxes, relay, scheme, **more)

    return make


def _settings(
    base: Settings, tmp: Path, dovecot: Dovecot, relay: Relay, scheme: str, **more: object
) -> Settings:
    if scheme.endswith("s"):
        more = {"edi_ca_file": dovecot.ca_file, **more}
    port = dovecot.port_of(scheme)
    return edi_settings(
        base, tmp, port, scheme, edi_smtp_url=f"smtp://127.0.0.1:{relay.port}", **more
    )


def _parsed(raw: bytes) -> MailMessage:
    return email.message_from_bytes(raw)


def _reply_of(raw: bytes, pki: DevPki) -> ReadReply:
    head, _, body = raw.partition(b"\r\n\r\n")
    mail = _parsed(head + b"\r\n\r\n")
    return read_reply(body, str(mail["Content-Type"]), decryption=(pki.municipality.encryption,))


async def _count(sessions: Sessions, column: object, *where: object) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count(column)).where(*where)) or 0)  # type: ignore[arg-type]


async def test_a_mailed_sample_is_answered_by_mail_at_the_cpa_address(
    sessions: Sessions,
    empty_mailboxes: Dovecot,
    relay: Relay,
    pki: DevPki,
    mail_settings: MailSettings,
) -> None:
    settings = mail_settings()
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    empty_mailboxes.deliver("kpr-pilot", ebxml_message_mail(pki))
    await EdiRunner(edi_state(settings, sessions)).round()
    assert empty_mailboxes.count("kpr-pilot") == 0
    [(sender, recipients, raw)] = relay.taken()
    assert (sender, recipients) == (PILOT_BOX, [MUNICIPALITY_ADDRESS])
    mail = _parsed(raw)
    assert mail["SOAPAction"] == '"ebXML"'
    assert mail.get_content_type() == "multipart/related"
    assert mail.get_param("start")
    reply = _reply_of(raw, pki)
    assert reply.signed
    assert not reply.signature_findings
    assert reply.header is not None
    assert reply.header.acknowledgment is not None
    assert reply.apprec is not None
    assert parse_apprec(reply.apprec).status == "1"


async def test_a_duplicate_mail_is_acknowledged_again_and_stored_once(
    sessions: Sessions,
    empty_mailboxes: Dovecot,
    relay: Relay,
    pki: DevPki,
    mail_settings: MailSettings,
) -> None:
    settings = mail_settings()
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    body = _ebxml_body(pki, msghead())
    for _ in range(2):  # the MSH sends it again: a new mail, the same ebXML message
        empty_mailboxes.deliver("kpr-pilot", ebxml_message_mail(pki, body=body))
    await EdiRunner(edi_state(settings, sessions)).round()
    first, second = relay.taken()
    assert _reply_of(first[2], pki).apprec == _reply_of(second[2], pki).apprec
    assert await _count(sessions, MessageDedup.ebms_message_id) == 1
    assert await _count(sessions, Message.id, Message.status == "DUPLICATE") == 1


async def test_a_mail_over_the_limit_gets_an_ebxml_error_by_mail(
    sessions: Sessions,
    empty_mailboxes: Dovecot,
    relay: Relay,
    pki: DevPki,
    mail_settings: MailSettings,
) -> None:
    settings = mail_settings(max_message_bytes=40_000)
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    raw = _grown(pki)
    assert len(raw) > 40_000
    empty_mailboxes.deliver("kpr-pilot", raw)
    await EdiRunner(edi_state(settings, sessions)).round()
    assert empty_mailboxes.count("kpr-pilot") == 0
    [(_, recipients, reply_raw)] = relay.taken()
    assert recipients == [MUNICIPALITY_ADDRESS]
    reply = _reply_of(reply_raw, pki)
    assert reply.signed
    assert not reply.signature_findings
    assert reply.header is not None
    assert [e.error_code for e in reply.header.errors] == ["DeliveryFailure"]
    assert await _count(sessions, Message.id, Message.status == "TOO_LARGE") == 1


def _grown(pki: DevPki) -> bytes:
    """A message whose mail is over 40 000 bytes: a MsgHead with many notifications."""
    return ebxml_message_mail(pki, body=_ebxml_body(pki, msghead(120)))


def _ebxml_body(pki: DevPki, head: bytes) -> tuple[bytes, str]:
    """The demo municipality's signed, encrypted ebXML message around `head`: body and type."""
    from app.dev.client import SendOptions, build_epj_message

    built = build_epj_message(
        head,
        SendOptions(from_her="8000001"),
        signing=pki.municipality.signing,
        encrypt_to=pki.kpr.encryption.certificate,
    )
    return built.body, built.content_type


@pytest.mark.parametrize("scheme", ["imaps", "pop3s"])
async def test_tls_is_verified_against_the_configured_ca(
    sessions: Sessions,
    empty_mailboxes: Dovecot,
    relay: Relay,
    pki: DevPki,
    mail_settings: MailSettings,
) -> None:
    settings = mail_settings()
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    empty_mailboxes.deliver("kpr-pilot", ebxml_message_mail(pki))
    untrusted = settings.model_copy(update={"edi_ca_file": None})
    await EdiRunner(edi_state(untrusted, sessions)).round()  # the system CAs: refused
    assert empty_mailboxes.count("kpr-pilot") == 1
    assert relay.taken() == []
    await EdiRunner(edi_state(settings, sessions)).round()
    assert empty_mailboxes.count("kpr-pilot") == 0
    assert len(relay.taken()) == 1


async def test_one_session_takes_a_batch_and_the_rest_waits_for_the_next_round(
    sessions: Sessions,
    empty_mailboxes: Dovecot,
    relay: Relay,
    pki: DevPki,
    monkeypatch: pytest.MonkeyPatch,
    mail_settings: MailSettings,
) -> None:
    """POP3 removes the DELE'd mails at the session's QUIT: a batch's mails are gone after
    it, the rest stay for the next session."""
    monkeypatch.setattr(edi_runner, "BATCH", 2)
    settings = mail_settings()
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    for _ in range(3):
        empty_mailboxes.deliver("kpr-pilot", ebxml_message_mail(pki))
    edi = EdiRunner(edi_state(settings, sessions))
    report = await edi.poll(settings.edi_mailboxes[0])
    assert (report.read, empty_mailboxes.count("kpr-pilot")) == (2, 1)
    report = await edi.poll(settings.edi_mailboxes[0])
    assert (report.read, empty_mailboxes.count("kpr-pilot")) == (1, 0)
    assert await _count(sessions, Message.id, Message.status == "OK") == 3


@pytest.mark.parametrize("scheme", ["pop3s"])
async def test_pop3_a_crash_before_quit_leaves_the_mail_and_it_is_answered_the_same(
    sessions: Sessions,
    empty_mailboxes: Dovecot,
    relay: Relay,
    pki: DevPki,
    monkeypatch: pytest.MonkeyPatch,
    mail_settings: MailSettings,
) -> None:
    """The outcome and the reply committed and the DELE given, then the connection lost
    before QUIT (as when the process dies): the server forgets the DELE, the mail is read
    again, stored as a duplicate, and its reply (already queued) is mailed once."""
    settings = mail_settings()
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    empty_mailboxes.deliver("kpr-pilot", ebxml_message_mail(pki))
    quit_session = Pop3Mailbox.__exit__

    def connection_lost(self: Pop3Mailbox, *exc: object) -> None:
        pop, self._pop = self._pop, None
        assert pop is not None
        pop.close()  # no QUIT

    monkeypatch.setattr(Pop3Mailbox, "__exit__", connection_lost)
    state = edi_state(settings, sessions)
    assert (await EdiRunner(state).poll(settings.edi_mailboxes[0])).read == 1
    assert empty_mailboxes.count("kpr-pilot") == 1
    monkeypatch.setattr(Pop3Mailbox, "__exit__", quit_session)
    await EdiRunner(state).round()
    assert empty_mailboxes.count("kpr-pilot") == 0
    [(_, recipients, raw)] = relay.taken()
    assert recipients == [MUNICIPALITY_ADDRESS]
    assert _reply_of(raw, pki).apprec is not None
    assert await _count(sessions, Message.id, Message.status == "OK") == 1
    assert await _count(sessions, Message.id, Message.status == "DUPLICATE") == 1


@pytest.mark.parametrize("scheme", ["pop3s"])
async def test_pop3_mails_with_lines_over_2_kib_hold_up_nothing(
    sessions: Sessions,
    empty_mailboxes: Dovecot,
    relay: Relay,
    pki: DevPki,
    mail_settings: MailSettings,
) -> None:
    """poplib reads lines of at most 2 KiB: a mail with a longer line is still read whole
    (and refused by the intake), one over the limit is refused with nothing read, and the
    mails after them are answered."""
    settings = mail_settings(max_message_bytes=40_000)
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    junk = b"Subject: junk\r\nContent-Type: text/plain\r\n\r\n"
    mails = [
        ebxml_message_mail(pki),
        junk + b"x" * 3_000 + b"\r\n",
        junk + b"y" * 50_000 + b"\r\n",
        ebxml_message_mail(pki),
    ]
    for raw in mails:
        empty_mailboxes.deliver("kpr-pilot", raw)
    await EdiRunner(edi_state(settings, sessions)).round()
    assert empty_mailboxes.count("kpr-pilot") == 0
    assert len(relay.taken()) == 2
    assert await _count(sessions, Message.id, Message.status == "OK") == 2
    assert await _count(sessions, Message.id, Message.status == "TOO_LARGE") == 1
    assert await _count(sessions, Message.id) == 4


@pytest.mark.parametrize("scheme", ["pop3s"])
async def test_pop3_a_failure_before_the_commit_leaves_the_mail_for_the_next_poll(
    sessions: Sessions,
    empty_mailboxes: Dovecot,
    relay: Relay,
    pki: DevPki,
    monkeypatch: pytest.MonkeyPatch,
    mail_settings: MailSettings,
) -> None:
    """The outcome not stored (the database away): no DELE, the mail stays in the maildrop
    and the next poll answers it."""
    from app.edi import repository as edi_repo

    settings = mail_settings()
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    empty_mailboxes.deliver("kpr-pilot", ebxml_message_mail(pki))
    stored = edi_repo.outcome_of

    async def not_stored(*args: object) -> None:
        return None

    monkeypatch.setattr(edi_repo, "outcome_of", not_stored)
    state = edi_state(settings, sessions)
    report = await EdiRunner(state).poll(settings.edi_mailboxes[0])
    assert (report.read, report.kept) == (0, 1)
    assert empty_mailboxes.count("kpr-pilot") == 1
    monkeypatch.setattr(edi_repo, "outcome_of", stored)
    await EdiRunner(state).round()
    assert empty_mailboxes.count("kpr-pilot") == 0
    [(_, _, raw)] = relay.taken()
    assert _reply_of(raw, pki).apprec is not None


def _environment(settings: Settings, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPR_")}
    boxes = ",".join(
        mailbox_entry(
            b.address, b.protocol + ("s" if b.tls else ""), b.username, b.port, b.environment
        )
        for b in settings.edi_mailboxes
    )
    env.update(
        KPR_ENV="test",
        KPR_DATABASE_URL=settings.database_url,
        KPR_PKI_DIR=str(settings.pki_dir),
        KPR_RECEIVERS=",".join(f"{h}={e.value}" for h, e in settings.receivers.items()),
        KPR_REGISTER_KEYS=str(REGISTER_SETTINGS["register_keys"]),
        KPR_REGISTER_HMAC_KEY=str(REGISTER_SETTINGS["register_hmac_key"]),
        KPR_EDI_MAILBOXES=boxes,
        KPR_EDI_CREDENTIALS_FILE=str(settings.edi_credentials_file),
        KPR_EDI_CA_FILE=str(settings.edi_ca_file or ""),
        KPR_EDI_SMTP_URL=str(settings.edi_smtp_url),
        KPR_EDI_POLL_SECONDS="0.2",
        KPR_LOG_FORMAT="json",
    )
    return env


async def test_a_sigkill_while_mails_are_processed_loses_nothing(
    sessions: Sessions,
    tmp_path: Path,
    empty_mailboxes: Dovecot,
    relay: Relay,
    pki: DevPki,
    mail_settings: MailSettings,
) -> None:
    """`kpr-mottak edi listen` killed (SIGKILL) again and again while it works through the
    mailbox; afterwards every mail is answered, none is left, nothing is stored twice."""
    settings = mail_settings()
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    mails = [ebxml_message_mail(pki) for _ in range(4)]
    for raw in mails:
        empty_mailboxes.deliver("kpr-pilot", raw)
    env = _environment(settings, tmp_path)
    await asyncio.to_thread(_kill_repeatedly, env)
    state = edi_state(settings, sessions)
    await EdiRunner(state).round()
    assert empty_mailboxes.count("kpr-pilot") == 0
    # a reply claimed by a killed process is sent once its lease has run out
    relay_config = RelayConfig.from_settings(settings)
    assert relay_config is not None
    later = datetime.now(UTC) + timedelta(hours=1)
    await send_due(sessions, relay_config, clock=lambda: later)
    answered = {
        _reply_of(raw, pki).header.acknowledgment.ref_to_message_id  # type: ignore[union-attr]
        for _, _, raw in relay.taken()
    }
    assert len(answered) == 4
    assert await _count(sessions, MessageDedup.ebms_message_id) == 4
    assert await _count(sessions, Message.id, Message.status == "OK") == 4


def _kill_repeatedly(env: dict[str, str]) -> None:
    """`kpr-mottak edi listen` started and SIGKILLed at different points of its work."""
    command = [sys.executable, "-c", "from app.cli.root import main; main()", "edi", "listen"]
    for delay in (2.5, 3.5, 4.5, 5.5):
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
