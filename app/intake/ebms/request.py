"""The ebXML-over-HTTP request as the HTTP binding hands it to the intake, the reply it
answers with, and the request's row as stored on arrival."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import IO

import anyio

from app.core.xmlparse import xml_safe
from app.intake.received import TransportName
from app.models import Message
from app.statuses import MessageStatus

# Of a request that is refused or not (yet) authenticated only this much of the body is kept:
# enough to see what it was, not a free store for anyone (issue 9).
RAW_PREFIX_BYTES = 4096


@dataclass(frozen=True, slots=True)
class SpooledBody:
    """A request body as it arrived: in a temporary file (in memory up to a threshold, then
    on disk), with its size and SHA-256 computed while it was read."""

    file: IO[bytes]
    size: int
    sha256: str

    def read_and_close(self) -> bytes:
        try:
            self.file.seek(0)
            return self.file.read()
        finally:
            self.file.close()


@dataclass(frozen=True, slots=True)
class IntakeRequest:
    body: bytes
    content_type: str | None
    soap_action: str | None
    remote_addr: str | None
    request_id: str
    received_at: datetime
    # the body until `receive` has an intake slot for it (then `body`, and its hash here)
    spooled: SpooledBody | None = None
    body_sha256: str | None = None
    transport: TransportName = "ebxml-http"  # ebXML over SMTP: "ebxml-smtp"

    def with_spooled(self, spooled: SpooledBody) -> IntakeRequest:
        return replace(self, spooled=spooled)


@dataclass(frozen=True, slots=True)
class Reply:
    status_code: int
    body: bytes
    content_type: str


def new_message(
    req: IntakeRequest, *, size: int, sha256: str | None, full: bool = False
) -> Message:
    """The request's row. Only a prefix of the body is kept until the sender is
    authenticated (`_authenticate` then stores all of it); `full` for an internal
    failure, which must not lose a message."""
    kept = req.body if full or len(req.body) <= RAW_PREFIX_BYTES else None
    return Message(
        received_at=req.received_at,
        request_id=req.request_id,
        remote_addr=req.remote_addr,
        # header text may hold control characters; PostgreSQL text cannot hold NUL
        content_type=xml_safe(req.content_type or "")[:1000],
        size_bytes=size,
        sha256=sha256,
        raw=kept if kept is not None else req.body[:RAW_PREFIX_BYTES],
        raw_ref=None
        if kept is not None
        else f"first {RAW_PREFIX_BYTES} of {len(req.body)} bytes: not authenticated",
        status=MessageStatus.RECEIVED,
        transport=req.transport,
    )


async def loaded(request: IntakeRequest) -> IntakeRequest:
    """The spooled body read into memory once the request has an intake slot: bodies that
    wait for one (a deadline day's uploads) hold no memory meanwhile."""
    spooled = request.spooled
    if spooled is None:
        return request
    body = await anyio.to_thread.run_sync(spooled.read_and_close)
    return replace(request, body=body, spooled=None, body_sha256=spooled.sha256)
