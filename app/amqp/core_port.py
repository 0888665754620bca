"""The port between the AMQP transport and the transport-neutral intake core.

The transport hands the core one stored message (`InboxMessage`) and gets back what to send:
an AppRec for `{sender}_async`, an error for `{sender}_error`, or "try again later" (a
revocation status that cannot be known now, a database that is busy). The adapter to the
intake core implements `IntakePort`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from app.amqp.envelope import Envelope, Refusal


@dataclass(frozen=True, slots=True)
class InboxMessage:
    inbox_id: int
    queue: str
    envelope: Envelope
    body: bytes
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    attempts: int = 0  # processings that ended in "try again later"
    # the size as received when the body was not kept (over KPR_MAX_MESSAGE_BYTES)
    size: int | None = None

    @property
    def received_bytes(self) -> int:
        return len(self.body) if self.size is None else self.size


class Verdict(StrEnum):
    APPREC = "apprec"
    ERROR = "error"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class PortOutcome:
    verdict: Verdict
    # APPREC: the protected AppRec (CMS signed, then enveloped for the sender)
    apprec: bytes | None = None
    refusal: Refusal | None = None
    # the audit's message row, when the core stored one
    message_id: int | None = None
    reason: str | None = None


class IntakePort(Protocol):
    async def process(self, message: InboxMessage) -> PortOutcome: ...
