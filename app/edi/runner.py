"""The EDI channel as one task: each round polls every mailbox (IMAP or POP3, in a worker
thread) and sends the due reply mails, then waits `KPR_EDI_POLL_SECONDS`.

Per mailbox, one session takes at most `BATCH` mails, oldest first, one at a time, and each is
removed only after `EdiIntake` reports its outcome committed (POP3: marked with DELE, gone at
the session's QUIT); a mail whose outcome could not be stored stays, and
that mailbox's round ends there (the database is away: the next round tries again). A mailbox
that cannot be reached is logged and tried next round; it holds up no other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import anyio

from app.edi import oversize
from app.edi.handler import EdiIntake, Handled
from app.edi.imap import ImapMailbox
from app.edi.mailbox import Listed, Mailbox, MailboxError
from app.edi.pop3 import Pop3Mailbox
from app.edi.sender import EdiMailer, RelayConfig, send_due
from app.platform.logs import get_logger
from app.platform.mailboxes import EdiMailbox, read_credentials
from app.state import AppState

log = get_logger(__name__)

BATCH = 20
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PollReport:
    read: int = 0
    kept: int = 0  # left in the mailbox for the next round


def mailbox_passwords(state: AppState) -> dict[str, str]:
    path = state.settings.edi_credentials_file
    if path is None:
        return {}
    found = read_credentials(path.read_text(), "KPR_EDI_CREDENTIALS_FILE")
    return {name.lower(): password for name, password in found.items()}


@dataclass
class EdiRunner:
    state: AppState
    interval: float | None = None
    intake: EdiIntake = field(init=False)

    def __post_init__(self) -> None:
        self.intake = EdiIntake(self.state)

    async def poll(self, box: EdiMailbox) -> PollReport:
        """One session on a mailbox: at most `BATCH` mails read, answered and removed, oldest
        first (the rest wait for the next round)."""
        password = mailbox_passwords(self.state).get(box.address)
        if password is None:
            log.error("edi.no_password", mailbox=box.label)
            return PollReport()
        session = open_mailbox(box, password, self.state.settings.edi_ca_file)
        await _in_thread(session.__enter__)
        read = 0
        try:
            for listed in await _in_thread(lambda: session.listed(BATCH)):
                handled = await self._one(session, box, listed)
                if not handled.committed:
                    return PollReport(read=read, kept=1)
                await _in_thread(lambda key=listed.key: session.remove(key))  # type: ignore[misc]
                read += 1
        finally:
            await _in_thread(lambda: session.__exit__(None, None, None))
        return PollReport(read=read)

    async def _one(self, session: Mailbox, box: EdiMailbox, listed: Listed) -> Handled:
        if listed.size > self.state.settings.max_message_bytes:
            mail = await _in_thread(lambda: _oversize_parts(session, listed))
            return await oversize.refuse(self.intake, box, mail)
        raw = await _in_thread(lambda: session.fetch(listed.key))
        return await self.intake.handle(raw, box)

    async def round(self) -> None:
        for box in self.state.settings.edi_mailboxes:
            try:
                report = await self.poll(box)
            except MailboxError as exc:
                log.warning("edi.mailbox_unavailable", mailbox=box.label, error=str(exc)[:300])
                continue
            if report.read or report.kept:
                log.info("edi.polled", mailbox=box.label, read=report.read, kept=report.kept)
        relay = RelayConfig.from_settings(self.state.settings)
        if relay is not None:
            await send_due(self.state.sessions, relay, writer_lock=self.state.sqlite_writer)

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.interval or self.state.settings.edi_poll_seconds
        log.info("edi.started", mailboxes=len(self.state.settings.edi_mailboxes))
        while not stop.is_set():
            try:
                await self.round()
            except Exception as exc:  # never let the loop die: log and try again next round
                log.error("edi.round_failed", error_type=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
        log.info("edi.stopped")


def open_mailbox(box: EdiMailbox, password: str, ca_file: Path | None) -> Mailbox:
    """A session (not yet connected) for the mailbox's protocol."""
    if box.protocol == "pop3":
        return Pop3Mailbox(box, password, ca_file)
    return ImapMailbox(box, password, ca_file)


def _oversize_parts(session: Mailbox, listed: Listed) -> oversize.OversizeMail:
    first = session.first_part(listed, oversize.ENVELOPE_BYTES)
    return oversize.OversizeMail(
        size=listed.size, head=first.head, part_headers=first.part_headers, part=first.part
    )


async def _in_thread(call: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(call)


def start_edi(state: AppState) -> asyncio.Task[None] | None:
    """The EDI task in the running event loop when mailboxes or a relay are configured; with
    both, the relay also answers, by mail, messages that came over HTTP from a party whose CPA
    asks for replies at a mailto: endpoint (issue 26's `AppState.reply_mailer`)."""
    settings = state.settings
    relay = RelayConfig.from_settings(settings)
    if relay is not None and settings.edi_mailboxes:
        state.reply_mailer = EdiMailer(relay, settings.edi_mailboxes)
    if not settings.edi_mailboxes and relay is None:
        return None
    return asyncio.create_task(EdiRunner(state).run(asyncio.Event()), name="kpr-edi")
