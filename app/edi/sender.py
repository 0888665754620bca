"""Reply mails from `edi_outbox` through the EDI relay (`KPR_EDI_SMTP_URL`), at least once,
with the email outbox's back-off (app/notify/sender.py): 1, 2, 4 ... minutes, at most an hour,
ten attempts. A claimed row is leased; the slow part (SMTP) runs outside any transaction, and a
row is marked sent only after the relay took the mail. This relay is not the notifier's
(`KPR_SMTP_*`): replies go to NHN's EDI network, notifications to people.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.edi import repository as repo
from app.edi.mail import ebxml_mail
from app.edi.mailbox import tls_context
from app.notify.sender import MAX_ATTEMPTS, backoff
from app.platform.logs import get_logger
from app.platform.mailboxes import EdiMailbox, EdiRelay, parse_relay, read_credentials
from app.platform.settings import Settings
from app.platform.sqlite_writer import SqliteWriter

log = get_logger(__name__)

TIMEOUT_SECONDS = 60.0
_ADDRESS = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+")


@dataclass(frozen=True, slots=True)
class RelayConfig:
    relay: EdiRelay
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    timeout: float = TIMEOUT_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> RelayConfig | None:
        if not settings.edi_smtp_url:
            return None
        username = password = None
        if settings.edi_smtp_credentials_file is not None:
            found = read_credentials(
                settings.edi_smtp_credentials_file.read_text(), "KPR_EDI_SMTP_CREDENTIALS_FILE"
            )
            username, password = next(iter(found.items()), (None, None))
        return cls(parse_relay(settings.edi_smtp_url), username, password, settings.edi_ca_file)


def _now() -> datetime:
    return datetime.now(UTC)


def _error_text(exc: BaseException) -> str:
    """For last_error: the error's type and text, addresses left out."""
    return _ADDRESS.sub("<adresse>", f"{type(exc).__name__}: {exc}")[:500]


async def send_due(
    sessions: async_sessionmaker[AsyncSession],
    config: RelayConfig,
    *,
    batch: int = 10,
    clock: Callable[[], datetime] = _now,
    writer_lock: SqliteWriter | None = None,
) -> int:
    """Send the due replies, at most `batch`; the number sent."""
    lease = timedelta(seconds=config.timeout * (batch + 2))
    guard = writer_lock or contextlib.nullcontext()
    async with guard, sessions() as session:
        due = await repo.claim_due(session, clock(), batch, lease)
        await session.commit()
    if not due:
        return 0
    sent = 0
    smtp: aiosmtplib.SMTP | None = None
    try:
        for row in due:
            try:
                if smtp is None:
                    smtp = await _connect(config)
                await _send(smtp, sessions, row, clock())
                error: Exception | None = None
            except Exception as exc:  # any failure is one failed attempt of this row
                error = exc
            async with guard, sessions() as session:
                await _record(session, row, error, clock())
                await session.commit()
            sent += error is None
    finally:
        if smtp is not None and smtp.is_connected:
            with contextlib.suppress(Exception):
                await smtp.quit()
    return sent


async def _send(
    smtp: aiosmtplib.SMTP,
    sessions: async_sessionmaker[AsyncSession],
    row: repo.DueReply,
    now: datetime,
) -> None:
    async with sessions() as session:
        body, content_type = await repo.reply_body(session, row.id)
    stamp = int(row.created_at.timestamp())
    mail = ebxml_mail(
        body,
        content_type,
        sender=row.mail_from,
        recipient=row.recipient,
        message_id=f"edi-{row.id}.{stamp}@kpr-mottak",
        date=now,
    )
    await smtp.sendmail(mail.sender, [mail.recipient], mail.data)


async def _record(
    session: AsyncSession, row: repo.DueReply, error: Exception | None, now: datetime
) -> None:
    attempts = row.attempts + 1
    if error is None:
        log.info("edi.reply_sent", outbox_id=row.id, message_id=row.message_id)
        await repo.record_attempt(
            session, row.id, now=now, attempts=attempts, error=None, retry_at=None
        )
        return
    last = attempts >= MAX_ATTEMPTS or isinstance(error, ValueError)  # ValueError: unbuildable
    log.warning(
        "edi.reply_failed",
        outbox_id=row.id,
        message_id=row.message_id,
        attempts=attempts,
        gave_up=last,
        error_type=type(error).__name__,
        smtp_code=getattr(error, "code", None),
    )
    await repo.record_attempt(
        session,
        row.id,
        now=now,
        attempts=attempts,
        error=_error_text(error),
        retry_at=None if last else now + backoff(attempts),
    )


async def _connect(config: RelayConfig) -> aiosmtplib.SMTP:
    relay = config.relay
    context = tls_context(config.ca_file) if relay.tls or relay.starttls else None
    smtp = aiosmtplib.SMTP(
        hostname=relay.host,
        port=relay.port,
        use_tls=relay.tls,
        start_tls=relay.starttls,
        tls_context=context,
        timeout=config.timeout,
    )
    await smtp.connect()
    if config.username:
        await smtp.login(config.username, config.password or "")
    return smtp


class EdiMailer:
    """The EDI relay as issue 26's mail sender (`AppState.reply_mailer`): a message that came
    over HTTP from a party whose CPA asks for replies by mail (`syncReplyMode` none on a
    `mailto:` channel) is answered through the same relay, from KPR's EDI address of the
    environment the message came to (the first configured one when that environment has
    none): a production reply never leaves from the test address."""

    def __init__(self, config: RelayConfig, mailboxes: Sequence[EdiMailbox]) -> None:
        if not mailboxes:
            raise ValueError("EdiMailer needs at least one EDI address to send from")
        self.config = config
        self._mailboxes = tuple(mailboxes)

    def mail_from(self, environment: str | None) -> str:
        for box in self._mailboxes:
            if box.environment == environment:
                return box.address
        return self._mailboxes[0].address

    async def send_reply(
        self, address: str, body: bytes, content_type: str, *, environment: str | None
    ) -> None:
        mail = ebxml_mail(
            body,
            content_type,
            sender=self.mail_from(environment),
            recipient=address,
            message_id=f"edi-http-{uuid.uuid4().hex}@kpr-mottak",
            date=_now(),
        )
        smtp = await _connect(self.config)
        try:
            await smtp.sendmail(mail.sender, [mail.recipient], mail.data)
        finally:
            with contextlib.suppress(Exception):
                await smtp.quit()
