"""The EDI channel as one task: each round polls every mailbox (IMAP, in a worker thread) and
sends the due reply mails, then waits `KPR_EDI_POLL_SECONDS`.

Per mailbox, mails are taken oldest first, one at a time, and each is removed only after
`EdiIntake` reports its outcome committed; a mail whose outcome could not be stored stays, and
that mailbox's round ends there (the database is away: the next round tries again). A mailbox
that cannot be reached is logged and tried next round; it holds up no other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from app.edi import oversize
from app.edi.handler import EdiIntake, Handled
from app.edi.imap import ImapMailbox, Listed, MailboxError
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
        """One pass over a mailbox: every mail read, answered and removed, oldest first."""
        password = mailbox_passwords(self.state).get(box.address)
        if password is None:
            log.error("edi.no_password", mailbox=box.label)
            return PollReport()
        session = ImapMailbox(box, password, self.state.settings.edi_ca_file)
        await _in_thread(session.__enter__)
        read = 0
        try:
            for listed in await _in_thread(lambda: session.listed(BATCH)):
                handled = await self._one(session, box, listed)
                if not handled.committed:
                    return PollReport(read=read, kept=1)
                await _in_thread(lambda uid=listed.uid: session.remove(uid))  # type: ignore[misc]
                read += 1
        finally:
            await _in_thread(lambda: session.__exit__(None, None, None))
        return PollReport(read=read)

    async def _one(self, session: ImapMailbox, box: EdiMailbox, listed: Listed) -> Handled:
        if listed.size > self.state.settings.max_message_bytes:
            mail = await _in_thread(lambda: _oversize_parts(session, listed))
            return await oversize.refuse(self.intake, box, mail)
        raw = await _in_thread(lambda: session.fetch(listed.uid))
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


def _oversize_parts(session: ImapMailbox, listed: Listed) -> oversize.OversizeMail:
    return oversize.OversizeMail(
        size=listed.size,
        head=session.fetch(listed.uid, "HEADER"),
        part_headers=session.fetch(listed.uid, "1.MIME"),
        part=session.fetch(listed.uid, "1", limit=oversize.ENVELOPE_BYTES),
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
        state.reply_mailer = EdiMailer(relay, settings.edi_mailboxes[0].address)
    if not settings.edi_mailboxes and relay is None:
        return None
    return asyncio.create_task(EdiRunner(state).run(asyncio.Event()), name="kpr-edi")
