"""Mail the site's MTA hands over directly (`KPR_EDI_LISTEN`): an LMTP or SMTP listener
(aiosmtpd) in the service's event loop, beside the mailbox polling.

A mail is answered `250` only once its outcome is committed (the same `EdiIntake.handle` the
mailbox reader runs, so the reply waits in `edi_outbox` and a mail handed over twice is
answered once); anything short of that is `451`, and the MTA keeps the mail and tries again.
One recipient per transaction (`452` for a second): LMTP answers DATA once per recipient, and
each of KPR's addresses is one environment. A mail over `KPR_MAX_MESSAGE_BYTES` is refused as
the mailbox reader refuses it (stored as too large; a signed MessageError by mail only to an
authenticated sender) and acknowledged with 250, so the MTA does not bounce it to an address
the mail chose. What the listener itself buffers is capped at NHN's largest EDI mail.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from app.edi import oversize
from app.edi.handler import EdiIntake, Handled
from app.platform.logs import get_logger
from app.platform.mailboxes import EdiMailbox
from app.state import AppState

log = get_logger(__name__)

# NHN: a whole EDI mail is at most 51 200 000 bytes; more is not buffered at all (552)
NHN_MAX_MAIL_BYTES = 51_200_000
_BOUNDARY = re.compile(rb'boundary="?([^";\r\n]+)"?', re.IGNORECASE)


class _Handler:
    """aiosmtpd's hooks: the recipients KPR serves here, and each mail through the intake."""

    def __init__(self, intake: EdiIntake, boxes: Sequence[EdiMailbox], limit: int) -> None:
        self.intake = intake
        self.boxes = {b.address: b for b in boxes}
        self.limit = limit

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: object
    ) -> str:
        if envelope.rcpt_tos:
            return "452 4.5.3 One recipient per message, please send the next one apart"
        if address.lower() not in self.boxes:
            return "550 5.1.1 Not a KPR EDI address here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        box = self.boxes[envelope.rcpt_tos[0].lower()]
        raw = envelope.original_content or b""
        try:
            handled = await self._handle(raw, box)
        except Exception as exc:  # the MTA keeps the mail and tries again
            log.error("edi.listen_failed", mailbox=box.label, error_type=type(exc).__name__)
            return "451 4.3.0 Not stored; try again later"
        if not handled.committed:
            return "451 4.3.0 Not stored; try again later"
        return f"250 2.0.0 Stored as message {handled.message_id}"

    async def _handle(self, raw: bytes, box: EdiMailbox) -> Handled:
        if len(raw) > self.limit:
            return await oversize.refuse(self.intake, box, oversize_of(raw))
        return await self.intake.handle(raw, box)


def oversize_of(raw: bytes) -> oversize.OversizeMail:
    """The parts of a mail the size refusal reads (as the mailbox reader fetches them): the
    header block, the first MIME part's headers and the start of its body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    if not body:
        head, _, body = raw.partition(b"\n\n")
    found = _BOUNDARY.search(head)
    part_headers, part = b"", b""
    if found is not None:
        start = body.find(b"--" + found.group(1))
        if start >= 0:
            rest = body[start:].split(b"\n", 1)[-1]
            part_headers, _, part = rest.partition(b"\r\n\r\n")
    return oversize.OversizeMail(
        size=len(raw),
        head=head,
        part_headers=part_headers,
        part=part[: oversize.ENVELOPE_BYTES],
    )


@dataclass
class EdiListeners:
    servers: list[asyncio.Server] = field(default_factory=list)

    async def close(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()


async def start_listeners(state: AppState) -> EdiListeners:
    """One listener per HOST:PORT in `KPR_EDI_LISTEN` (none when it is empty)."""
    settings = state.settings
    intake = EdiIntake(state)
    limit = settings.max_message_bytes
    buffered = max(limit + 1024 * 1024, NHN_MAX_MAIL_BYTES)
    by_socket: dict[tuple[str, int, str], list[EdiMailbox]] = {}
    for box in settings.edi_listen:
        by_socket.setdefault((box.host, box.port, box.folder), []).append(box)
    listeners = EdiListeners()
    loop = asyncio.get_running_loop()
    for (host, port, protocol), boxes in by_socket.items():
        handler = _Handler(intake, boxes, limit)
        kind = LMTP if protocol == "lmtp" else SMTP

        def factory(kind: type[SMTP] = kind, handler: _Handler = handler) -> SMTP:
            return kind(handler, data_size_limit=buffered, hostname="kpr-mottak")

        # reuse_port: each worker of `serve --workers N` listens, the kernel spreads the MTA's
        # connections among them
        server = await loop.create_server(factory, host, port, reuse_port=True)
        listeners.servers.append(server)
        log.info("edi.listening", protocol=protocol, host=host, port=port, addresses=len(boxes))
    return listeners


async def run_listeners(state: AppState) -> None:
    """The listeners until cancelled (a task of the running service)."""
    listeners = await start_listeners(state)
    try:
        await asyncio.Event().wait()
    finally:
        await listeners.close()
