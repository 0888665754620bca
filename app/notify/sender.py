"""The outbox sender: sends due notification emails over SMTP, at least once.

One round (`send_due`):
1. Claim up to `batch` due rows (status 'pending', next_attempt_at <= now) in one statement,
   `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING ...`, moving their
   next_attempt_at a lease ahead, and commit. Several processes on one PostgreSQL database
   skip each other's rows; SQLite (one writer at a time) ignores the lock clause and runs the
   statement atomically. A claimed row is nobody else's until the lease runs out.
2. Send each row (one SMTP connection per round), then mark it: 'sent' with sent_at, committed
   only after the SMTP server accepted the mail (a crash in between sends it again after the
   lease: at least once); or, on failure, attempts + 1 and an exponential backoff, 'failed'
   after `max_attempts`. last_error holds the SMTP error with addresses masked.

Logs name the outbox row and the message, never the recipient (an employee's address).
The loop (`run_loop`) runs in the server when KPR_SMTP_HOST is set (`start_background`) or as
its own process (`kpr-mottak notify run`); it logs and retries, it never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.identifiers import mask_person_ids
from app.notify import repository as outbox
from app.notify.email import build_email, message_id_for
from app.platform.logs import get_logger
from app.platform.settings import Settings
from app.platform.sqlite_writer import SqliteWriter
from app.state import AppState

log = get_logger(__name__)

DEFAULT_BATCH = 20
DEFAULT_INTERVAL = 5.0
MAX_ATTEMPTS = 10
FIRST_BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=1)
SMTP_TIMEOUT = 30.0
_LAST_ERROR_LENGTH = 500
_EMAIL_LIKE = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+")


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 25
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    mail_from: str = "kpr-mottak@localhost"
    timeout: float = SMTP_TIMEOUT

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        if not settings.smtp_host:
            raise ValueError("KPR_SMTP_HOST is not set: there is no SMTP server to send to")
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username or None,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            starttls=settings.smtp_starttls,
            mail_from=settings.mail_from,
        )


@dataclass(frozen=True, slots=True)
class SendReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0  # failed this time, will be tried again
    failed: int = 0  # failed for the last time: status 'failed'


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after `attempts` failed ones: 1, 2, 4, ... minutes, at most
    an hour."""
    return min(FIRST_BACKOFF * (1 << min(max(attempts - 1, 0), 30)), MAX_BACKOFF)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _error_text(exc: BaseException) -> str:
    """The SMTP error for last_error: type and server answer, addresses masked."""
    text = f"{type(exc).__name__}: {exc}"
    text = mask_person_ids(_EMAIL_LIKE.sub("<adresse>", " ".join(text.split())))
    return text[:_LAST_ERROR_LENGTH]


async def send_due(
    sessions: async_sessionmaker[AsyncSession],
    config: SmtpConfig,
    *,
    batch: int = DEFAULT_BATCH,
    max_attempts: int = MAX_ATTEMPTS,
    clock: Callable[[], datetime] = _utcnow,
    writer_lock: SqliteWriter | None = None,
) -> SendReport:
    """Claim and send the due rows, at most `batch`. `writer_lock` is the app's SQLite writer
    lock when running inside the server (held only around the short writes, never while
    talking SMTP)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    lease = timedelta(seconds=config.timeout * (batch + 2))
    guard = writer_lock or contextlib.nullcontext()
    async with guard, sessions() as session:
        rows = await outbox.claim_due(session, clock(), batch, lease)
        await session.commit()
    if not rows:
        return SendReport()
    report = _Tally()
    connection = _Connection(config)
    try:
        for row in sorted(rows, key=lambda r: r.id):
            error = await connection.send(row, clock)
            async with guard, sessions() as session:
                gave_up = await _record(session, row, error, clock(), max_attempts)
                await session.commit()
            report.count(row, error, gave_up=gave_up)
    finally:
        await connection.close()
    return SendReport(
        claimed=len(rows), sent=report.sent, retrying=report.retrying, failed=report.failed
    )


class _Connection:
    """One SMTP connection for a batch, opened on first use; once the server cannot be
    reached, every further row fails with that error (no reconnect storm)."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.smtp: aiosmtplib.SMTP | None = None
        self.unreachable: Exception | None = None

    async def send(
        self, row: outbox.ClaimedEmail, clock: Callable[[], datetime]
    ) -> Exception | None:
        """None when sent, else the error (any failure to send is one failed attempt)."""
        if self.unreachable is not None:
            return self.unreachable
        config = self.config
        try:
            if self.smtp is None or not self.smtp.is_connected:
                self.smtp = None
                try:
                    self.smtp = await _connect(config)
                except Exception as exc:
                    self.unreachable = exc
                    raise
            await self.smtp.send_message(
                build_email(
                    mail_from=config.mail_from,
                    recipient=row.recipient,
                    subject=row.subject,
                    body=row.body,
                    message_id=message_id_for(row.id, row.created_at, config.mail_from),
                    date=clock(),
                ),
                sender=config.mail_from,
                recipients=[row.recipient],
            )
        except Exception as exc:
            return exc
        return None

    async def close(self) -> None:
        if self.smtp is not None and self.smtp.is_connected:
            with contextlib.suppress(Exception):
                await self.smtp.quit()


async def _record(
    session: AsyncSession,
    row: outbox.ClaimedEmail,
    error: Exception | None,
    now: datetime,
    max_attempts: int,
) -> bool:
    """Store the try's outcome; True when a failure was the last allowed attempt."""
    if error is None:
        await outbox.mark_sent(session, row.id, now)
        return False
    attempts = row.attempts + 1
    gave_up = attempts >= max_attempts
    await outbox.mark_failed(
        session,
        row.id,
        attempts=attempts,
        gave_up=gave_up,
        next_attempt_at=now if gave_up else now + backoff(attempts),
        last_error=_error_text(error),
    )
    return gave_up


@dataclass(slots=True)
class _Tally:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def count(self, row: outbox.ClaimedEmail, error: Exception | None, *, gave_up: bool) -> None:
        if error is None:
            self.sent += 1
            log.info("notify.sent", outbox_id=row.id, message_id=row.message_id)
            return
        if gave_up:
            self.failed += 1
        else:
            self.retrying += 1
        log.warning(
            "notify.failed",
            outbox_id=row.id,
            message_id=row.message_id,
            attempts=row.attempts + 1,
            gave_up=gave_up,
            error_type=type(error).__name__,
            smtp_code=getattr(error, "code", None),
        )


async def _connect(config: SmtpConfig) -> aiosmtplib.SMTP:
    smtp = aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        start_tls=config.starttls,
        timeout=config.timeout,
    )
    await smtp.connect()
    if config.username:
        await smtp.login(config.username, config.password or "")
    return smtp


async def run_loop(
    sessions: async_sessionmaker[AsyncSession],
    config: SmtpConfig,
    *,
    interval: float = DEFAULT_INTERVAL,
    batch: int = DEFAULT_BATCH,
    stop: asyncio.Event | None = None,
    once: bool = False,
    writer_lock: SqliteWriter | None = None,
) -> SendReport:
    """Send rounds until `stop` is set (or one pass over what is due when `once`); returns the
    totals. A full batch goes straight on to the next round, otherwise it waits `interval`
    seconds. Errors (database down, a bug) are logged and the round is tried again later."""
    stop = stop or asyncio.Event()
    total = SendReport()
    while not stop.is_set():
        report: SendReport | None = None
        try:
            report = await send_due(sessions, config, batch=batch, writer_lock=writer_lock)
        except Exception as exc:  # never let the loop die: log and try again next round
            log.error("notify.round_failed", error_type=type(exc).__name__)
        if report is not None:
            total = SendReport(
                claimed=total.claimed + report.claimed,
                sent=total.sent + report.sent,
                retrying=total.retrying + report.retrying,
                failed=total.failed + report.failed,
            )
        if report is not None and report.claimed >= batch:
            continue  # more may be due right now
        if once:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
    return total


@dataclass
class BackgroundSender:
    """The sender loop inside the server; a no-op when KPR_SMTP_HOST is not set."""

    task: asyncio.Task[SendReport] | None = None
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)

    async def stop(self, grace: float = 5.0) -> None:
        if self.task is None:
            return
        self.stop_event.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout=grace)
        except TimeoutError:  # stuck in SMTP: the claimed rows go again after their lease
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        except Exception as exc:
            log.error("notify.stop_failed", error_type=type(exc).__name__)


def start_background(
    state: AppState,
    *,
    interval: float = DEFAULT_INTERVAL,
    dev_sink: Callable[..., Awaitable[None]] | None = None,
) -> BackgroundSender:
    """Start the sender loop in the running event loop when SMTP is configured; in dev without
    SMTP, `dev_sink` (app.dev.devsink.run_sink, passed by the app factory so that this package
    does not import the dev aids) writes the emails into files."""
    sender = BackgroundSender()
    if state.settings.smtp_host:
        sender.task = asyncio.create_task(
            run_loop(
                state.sessions,
                SmtpConfig.from_settings(state.settings),
                interval=interval,
                stop=sender.stop_event,
                writer_lock=state.sqlite_writer,
            ),
            name="kpr-notify-sender",
        )
        log.info("notify.sender_started", interval=interval)
    elif state.settings.env.value == "dev" and dev_sink is not None:
        sender.task = asyncio.create_task(
            _sink(state, sender.stop_event, dev_sink), name="kpr-notify-dev-sink"
        )
        log.info("notify.dev_sink_started", directory=str(state.settings.mail_dir))
    return sender


async def _sink(
    state: AppState, stop: asyncio.Event, run_sink: Callable[..., Awaitable[None]]
) -> SendReport:
    await run_sink(
        state.sessions,
        state.settings.mail_dir,
        state.settings.mail_from,
        stop=stop,
        writer_lock=state.sqlite_writer,
    )
    return SendReport()
