"""The notification outbox sender against a real SMTP server (aiosmtpd) and both databases."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import cast

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

import app.main
from app.apprec.mapping import error_counts, receipt_outcome
from app.cli.root import app as cli_app
from app.content.iplos import rules as R
from app.core.findings import Finding, Subject
from app.dev.devpki import DevPki
from app.main import create_app
from app.models import IplosBruker, Message, NotificationOutbox
from app.notify.email import compose_notification
from app.notify.sender import MAX_BACKOFF, SmtpConfig, send_due, start_background
from app.platform.logs import configure_logging
from app.platform.settings import Settings
from tests.integration.messages import epj_message, post
from tests.protector import PROTECTOR

FID_LIKE = re.compile(r"\d{11}")
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def fid_like(text: str) -> re.Match[str] | None:
    """An 11-digit run outside the UUIDs an email names (its MsgId): a random UUID's last
    group holds 11 digits in about 1 of 100 messages, which made the check flaky."""
    return FID_LIKE.search(_UUID.sub("", text))


def test_fid_like_skips_a_uuid_but_not_a_fid() -> None:
    assert fid_like("Meldingens MsgId: c6092927-ae57-463f-b75f-468861005670\n") is None
    assert fid_like("MsgId: c6092927-ae57-463f-b75f-468861005670 fid 15867580074") is not None


# --- a real SMTP server in the test process -------------------------------------------------


class Inbox:
    """aiosmtpd handler: keeps every delivered envelope."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.refused_domain = "@ugyldig.example"
        self._lock = threading.Lock()

    async def handle_RCPT(
        self,
        server: SmtpServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if address.endswith(self.refused_domain):
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SmtpServer, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        with self._lock:
            envelopes = list(self.envelopes)
        return [
            message_from_bytes(cast(bytes, e.content), policy=policy.default) for e in envelopes
        ]

    def recipients(self) -> list[str]:
        with self._lock:
            return [r for e in self.envelopes for r in e.rcpt_tos]


def _text(mail: EmailMessage) -> str:
    """The decoded body with the line ends SMTP transport uses turned back into newlines."""
    return str(mail.get_content()).replace("\r\n", "\n")


def _fixed(at: datetime) -> Callable[[], datetime]:
    return lambda: at


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def smtp_config(smtp: tuple[Inbox, int]) -> SmtpConfig:
    return SmtpConfig(host="127.0.0.1", port=smtp[1], mail_from="kpr-mottak@kpr.example")


@pytest.fixture
def down_config() -> SmtpConfig:
    """An SMTP address where nothing listens."""
    return SmtpConfig(host="127.0.0.1", port=_free_port(), mail_from="kpr-mottak@kpr.example")


async def _outbox(sessions: async_sessionmaker[AsyncSession]) -> list[NotificationOutbox]:
    async with sessions() as s:
        return list(await s.scalars(select(NotificationOutbox).order_by(NotificationOutbox.id)))


async def _person_ids(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as s:
        rows = (await s.execute(select(IplosBruker.fid, IplosBruker.bruker_nr))).all()
    return [v for fid, bruker_nr in rows for v in (PROTECTOR.open(fid), bruker_nr) if v]


# --- sending ----------------------------------------------------------------------------------


async def test_queued_notification_is_mailed_to_innsendingsansvarlig_without_person_ids(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    smtp: tuple[Inbox, int],
    smtp_config: SmtpConfig,
) -> None:
    inbox, _ = smtp
    assert (await post(intake, epj_message(pki))).status_code == 200
    queued = await _outbox(sessions)
    assert queued
    assert all(o.status == "pending" for o in queued)

    report = await send_due(sessions, smtp_config)

    assert (report.sent, report.retrying, report.failed) == (len(queued), 0, 0)
    assert sorted(inbox.recipients()) == sorted(o.recipient for o in queued)
    assert "innsending@kommune.example" in inbox.recipients()  # type 17 contact of the message
    mails = {str(m["To"]): m for m in inbox.messages()}
    ids = await _person_ids(sessions)
    assert any(len(v) == 11 for v in ids)  # the message did carry fids
    for row in queued:
        mail = mails[row.recipient]
        assert mail["Subject"] == row.subject
        assert mail["From"] == "kpr-mottak@kpr.example"
        assert mail["Message-ID"]
        assert mail["Date"]
        body = _text(mail)
        assert body.strip() == row.body.strip()
        raw = mail.as_string()
        assert not any(v in raw or v in body for v in ids)
        assert not fid_like(body)
        assert "Sendt til: KPR HER-id 131725 (pilotmottaket; ikke ordinær rapportering)" in body
    after = await _outbox(sessions)
    assert all(o.status == "sent" and o.sent_at is not None for o in after)
    assert all(o.attempts == 1 and o.last_error is None for o in after)
    # Sent rows are not sent again.
    assert (await send_due(sessions, smtp_config)).claimed == 0
    assert len(inbox.envelopes) == len(queued)


async def test_norwegian_text_arrives_intact_as_utf8(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    smtp: tuple[Inbox, int],
    smtp_config: SmtpConfig,
) -> None:
    inbox, _ = smtp
    await post(intake, epj_message(pki))
    subject, body = compose_notification(
        party_name="Ålesund kommune, pleie og omsorg",
        her_id=8000001,
        message_ref=1,
        received_at=datetime(2024, 5, 2, 10, 0, tzinfo=UTC),
        status_text="OK, feil i delmelding",
        error_counts={"E31": 2},
        link="https://kpr.example/feilliste",
    )
    async with sessions() as s:
        for row in await s.scalars(select(NotificationOutbox)):
            row.subject, row.body = subject, body
        await s.commit()
    await send_due(sessions, smtp_config)
    mails = inbox.messages()
    assert mails
    for mail in mails:
        assert mail["Subject"] == subject
        assert mail.get_content_charset() == "utf-8"
        assert _text(mail).strip() == body.strip()
        assert "Ålesund" in _text(mail)
        assert "fødselsnummer er feil): 2" in _text(mail)


async def test_smtp_down_backs_off_and_fails_after_max_attempts(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    down_config: SmtpConfig,
) -> None:
    await post(intake, epj_message(pki))
    queued = await _outbox(sessions)
    start = datetime.now(UTC)

    report = await send_due(sessions, down_config, clock=lambda: start)

    assert (report.sent, report.retrying, report.failed) == (0, len(queued), 0)
    rows = await _outbox(sessions)
    for row in rows:
        assert (row.status, row.attempts) == ("pending", 1)
        assert row.next_attempt_at > start
        assert row.last_error
        assert "@" not in row.last_error
    # Not due yet: nothing is claimed.
    assert (await send_due(sessions, down_config, clock=lambda: start)).claimed == 0

    # Each later try waits longer (up to the cap) until max_attempts, then the row fails.
    now, delays = start, [rows[0].next_attempt_at - start]
    for attempt in (2, 3, 4):
        now = max(r.next_attempt_at for r in rows)
        report = await send_due(sessions, down_config, clock=_fixed(now), max_attempts=4)
        rows = await _outbox(sessions)
        assert all(r.attempts == attempt for r in rows)
        if attempt < 4:
            assert all(r.status == "pending" for r in rows)
            delays.append(rows[0].next_attempt_at - now)
    assert report.failed == len(queued)
    assert all(r.status == "failed" and r.last_error for r in rows)
    assert delays == sorted(delays)
    assert delays[0] < delays[-1] <= MAX_BACKOFF
    # Failed rows are never tried again.
    later = now + timedelta(days=1)
    assert (await send_due(sessions, down_config, clock=lambda: later)).claimed == 0


async def test_failed_try_then_success_marks_the_row_sent(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    smtp: tuple[Inbox, int],
    smtp_config: SmtpConfig,
    down_config: SmtpConfig,
) -> None:
    inbox, _ = smtp
    await post(intake, epj_message(pki))
    start = datetime.now(UTC)
    await send_due(sessions, down_config, clock=lambda: start)
    assert inbox.envelopes == []
    due = max(r.next_attempt_at for r in await _outbox(sessions))
    report = await send_due(sessions, smtp_config, clock=lambda: due)
    rows = await _outbox(sessions)
    assert report.sent == len(rows)
    assert all((r.status, r.attempts, r.last_error) == ("sent", 2, None) for r in rows)
    assert len(inbox.envelopes) == len(rows)


async def test_recipient_refused_is_recorded_without_the_address(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    smtp: tuple[Inbox, int],
    smtp_config: SmtpConfig,
) -> None:
    inbox, _ = smtp
    await post(intake, epj_message(pki))
    async with sessions() as s:
        row = (await s.scalars(select(NotificationOutbox).order_by(NotificationOutbox.id))).first()
        assert row is not None
        row.recipient = "ola.nordmann" + inbox.refused_domain
        bad_id = row.id
        await s.commit()
    report = await send_due(sessions, smtp_config)
    rows = {r.id: r for r in await _outbox(sessions)}
    assert report.retrying == 1
    assert rows[bad_id].status == "pending"
    error = rows[bad_id].last_error
    assert error is not None
    assert "550" in error
    assert "ola.nordmann" not in error
    others = [r for i, r in rows.items() if i != bad_id]
    assert all(r.status == "sent" for r in others)  # one bad address does not stop the rest
    assert len(inbox.envelopes) == len(others)


async def test_two_concurrent_senders_deliver_each_row_once(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    smtp: tuple[Inbox, int],
    smtp_config: SmtpConfig,
) -> None:
    inbox, _ = smtp
    await post(intake, epj_message(pki))
    now = datetime.now(UTC)
    async with sessions() as s:
        message = (await s.scalars(select(Message))).one()
        for i in range(40):
            s.add(
                NotificationOutbox(
                    message_id=message.id,
                    recipient=f"mottaker{i}@kommune.example",
                    subject="KPR: test",
                    body=f"Melding {i}",
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        await s.commit()
    total = len(await _outbox(sessions))

    async def drain() -> int:
        sent = 0
        while True:
            report = await send_due(sessions, smtp_config, batch=3)
            sent += report.sent
            if report.claimed == 0:
                return sent

    first, second = await asyncio.gather(drain(), drain())

    assert first + second == total
    recipients = inbox.recipients()
    assert len(recipients) == total
    assert len(set(recipients)) == total
    assert all(r.status == "sent" for r in await _outbox(sessions))


# --- inside the server, and as its own process ------------------------------------------------


async def test_server_sends_queued_mail_when_smtp_is_configured(
    settings_with_pki: Settings,
    demo_party: int,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    smtp: tuple[Inbox, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox, port = smtp
    # the server's loop polls every 5 s; the same loop, polling every 0.1 s
    monkeypatch.setattr(app.main, "start_background", partial(start_background, interval=0.1))
    configured = settings_with_pki.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
    application = create_app(configured)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
            assert (await post(c, epj_message(pki))).status_code == 200
            expected = len(await _outbox(sessions))
            for _ in range(300):  # the loop polls on its own schedule; wait for it, bounded
                if len(inbox.envelopes) >= expected:
                    break
                await asyncio.sleep(0.1)
    assert expected
    assert len(inbox.envelopes) == expected
    assert all(r.status == "sent" for r in await _outbox(sessions))


async def test_server_without_smtp_leaves_the_outbox_alone(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await post(intake, epj_message(pki))
    await asyncio.sleep(0.2)
    assert all(r.status == "pending" and r.attempts == 0 for r in await _outbox(sessions))


@pytest.fixture
async def queued(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> int:
    await post(intake, epj_message(pki))
    return len(await _outbox(sessions))


def test_cli_notify_run_once_sends_the_queue(
    queued: int,
    settings: Settings,
    smtp: tuple[Inbox, int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    inbox, port = smtp
    monkeypatch.setenv("KPR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KPR_ENV", "test")
    monkeypatch.setenv("KPR_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("KPR_SMTP_PORT", str(port))
    monkeypatch.setenv("KPR_MAIL_FROM", "kpr-mottak@kpr.example")
    monkeypatch.chdir(tmp_path)
    try:
        result = CliRunner().invoke(cli_app, ["notify", "run", "--once", "--batch", "1"])
    finally:
        configure_logging(settings.log_format)  # the command logged to the runner's stderr
    assert result.exit_code == 0, result.output
    assert f"{queued} sent" in result.output
    assert len(inbox.envelopes) == queued
    assert all(m["From"] == "kpr-mottak@kpr.example" for m in inbox.messages())


def test_cli_notify_run_refuses_without_smtp_host(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KPR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KPR_ENV", "test")
    monkeypatch.delenv("KPR_SMTP_HOST", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli_app, ["notify", "run", "--once"])
    assert result.exit_code == 2
    assert "KPR_SMTP_HOST" in result.output


# --- the text -----------------------------------------------------------------------------


def _compose(**overrides: object) -> tuple[str, str]:
    args: dict[str, object] = {
        "party_name": "Demo kommune",
        "her_id": 8000001,
        "message_ref": 4711,
        "received_at": datetime(2024, 1, 15, 23, 30, tzinfo=UTC),
        "status_text": "OK, feil i delmelding",
        "error_counts": {"E31": 3, "T02": 1},
        "link": "https://kpr.example/api/v1/kommuner/0301/feilliste",
    }
    args.update(overrides)
    return compose_notification(**args)  # type: ignore[arg-type]


def test_compose_names_message_time_status_counts_and_link() -> None:
    subject, body = _compose(msghead_msg_id="b6f1c1f2-1d0e-4c55-9d36-0f3c2a1e9b10")
    assert "OK, feil i delmelding" in subject
    assert "4711" in subject
    assert "Demo kommune (HER-id 8000001)" in body
    assert "16.01.2024 kl. 00:30:00 (norsk tid)" in body  # Europe/Oslo
    assert "b6f1c1f2-1d0e-4c55-9d36-0f3c2a1e9b10" in body
    assert "4 feil" in body
    assert "E31 (Pasientens fødselsnummer er feil): 3" in body
    assert "T02 (XML validerer ikke): 1" in body
    assert "https://kpr.example/api/v1/kommuner/0301/feilliste" in body


def test_compose_without_errors_says_so() -> None:
    _, body = _compose(error_counts={}, status_text="OK")
    assert "ingen feil" in body
    assert "feilkode" not in body


@pytest.mark.parametrize(
    "counts",
    [
        {"E31": 12345678901},
        {"E31": 99999, "E30": 999999, "X99": 10**12},
        {"E31": 123456, "E30": 12345},
        {code: 10**n for n, code in enumerate(["T01", "T02", "E10", "E30", "E31", "X99"], 9)},
    ],
)
def test_compose_never_holds_a_fid_like_digit_run(counts: dict[str, int]) -> None:
    fid = "01018012345"
    subject, body = _compose(
        error_counts=counts,
        party_name=f"Kommune {fid}",
        message_ref=f"{fid[:6]} {fid[6:]}",
        link=f"https://kpr.example/x/{fid}",
    )
    for text in (subject, body):
        assert not re.search(r"\d{11}", text)
        assert not re.search(r"\d{6}\s\d{5}", text)
        assert fid not in text
        assert fid[:6] not in text


def test_error_counts_match_the_apprec_errors_before_the_cap() -> None:
    def row(rule: object, guid: str, detail: str = "x") -> Finding:
        return Finding(rule, "/Melding", detail, Subject(notification_guid=guid))  # type: ignore[arg-type]

    findings = [
        Finding(R.XSD, "/Melding", "a"),
        Finding(R.XSD, "/Melding", "a"),  # the same finding twice: one Error
        Finding(R.XSD, "/Melding", "b"),
        Finding(R.NOT_XML, "/", "c"),
        row(R.FID_INVALID, "g1"),
        row(R.FID_MISSING, "g1"),  # same notification: one Error
        *[row(R.EVENT_COUNT, f"g{i}") for i in range(2, 150)],
        Finding(R.CALENDAR_LATE, "/Melding", "warning only"),
    ]
    expected: dict[str, int] = {}
    for e in receipt_outcome(findings, max_errors=10_000).errors:
        expected[e.code] = expected.get(e.code, 0) + 1
    assert error_counts(findings) == expected
    assert sum(expected.values()) == 3 + 1 + 1 + 148
    assert error_counts([Finding(R.CALENDAR_LATE, "/Melding", "w")]) == {}
