"""The development mail sink: with KPR_ENV=dev and no KPR_SMTP_HOST (what `make run` gives a
newcomer) the outbox delivers into files under KPR_MAIL_DIR (default var/mail/), one `.eml`
per email, listed at GET /dev/mail. The same claim and marking as the SMTP sender, so the
whole pilot flow can be followed on a laptop. Never used outside dev."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.notify import repository as outbox
from app.notify.email import build_email, message_id_for
from app.platform.logs import get_logger
from app.platform.private_files import private_dir, write_private
from app.platform.sqlite_writer import SqliteWriter

log = get_logger(__name__)

_NAME = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9]+\.eml")
LEASE = timedelta(minutes=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def deliver_due(
    sessions: async_sessionmaker[AsyncSession],
    directory: Path,
    mail_from: str,
    *,
    batch: int = 20,
    clock: Callable[[], datetime] = _utcnow,
    writer_lock: SqliteWriter | None = None,
) -> int:
    """Write the due outbox rows as files and mark them sent; the number written."""
    guard = writer_lock or contextlib.nullcontext()
    now = clock()
    async with guard, sessions() as session:
        rows = await outbox.claim_due(session, now, batch, LEASE)
        await session.commit()
    for row in sorted(rows, key=lambda r: r.id):
        email = build_email(
            mail_from=mail_from,
            recipient=row.recipient,
            subject=row.subject,
            body=row.body,
            message_id=message_id_for(row.id, row.created_at, mail_from),
            date=now,
        )
        name = f"{now.strftime('%Y%m%d-%H%M%S')}-{row.id}.eml"
        await anyio.to_thread.run_sync(_save, directory, name, bytes(email))
        async with guard, sessions() as session:
            await outbox.mark_sent(session, row.id, clock())
            await session.commit()
        log.info("notify.dev_sink_saved", outbox_id=row.id, file=name)
    return len(rows)


def _save(directory: Path, name: str, data: bytes) -> None:
    write_private(private_dir(directory) / name, data)


async def run_sink(
    sessions: async_sessionmaker[AsyncSession],
    directory: Path,
    mail_from: str,
    *,
    stop: asyncio.Event,
    interval: float = 2.0,
    writer_lock: SqliteWriter | None = None,
) -> None:
    while not stop.is_set():
        try:
            await deliver_due(sessions, directory, mail_from, writer_lock=writer_lock)
        except Exception as exc:  # a dev convenience must never stop the server
            log.error("notify.dev_sink_failed", error_type=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedMail:
    name: str
    to: str
    subject: str
    date: str
    body: str


def read_mail(path: Path) -> SavedMail:
    msg = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    part = msg.get_body(preferencelist=("plain",))
    body = part.get_content() if part is not None else ""
    return SavedMail(
        name=path.name,
        to=str(msg.get("To", "")),
        subject=str(msg.get("Subject", "")),
        date=str(msg.get("Date", "")),
        body=str(body),
    )


def saved_mails(directory: Path) -> list[SavedMail]:
    """Newest first."""
    if not directory.is_dir():
        return []
    names = sorted((p for p in directory.iterdir() if _NAME.fullmatch(p.name)), reverse=True)
    return [read_mail(p) for p in names]


def saved_mail(directory: Path, name: str) -> SavedMail | None:
    if not _NAME.fullmatch(name):  # never a path outside the directory
        return None
    path = directory / name
    return read_mail(path) if path.is_file() else None
