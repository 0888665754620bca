"""What processing one request decided, as one record.

The intake's steps fill in an `Outcome` (the message row's fields and status, its events,
findings, receipt, the emails to queue and the history to store) instead of writing as they
go; `repository.store_outcome` writes it set-based inside the request's one write transaction,
which also inserts the message row, its dedup claim and the history versions it was checked
against (`IntakeCore._write`). Before that the steps only read (party, dedup claim, MsgId
reuse, history), so a large message holds no lock while it is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from app.content.model import ContentResult, IplosHistory
from app.core.findings import Finding
from app.intake.history import HistoryRead
from app.statuses import MessageStatus, ReceiptKind

# What an event's detail may hold: JSON scalars and lists of ids (never message content).
EventValue = str | int | float | bool | None | Sequence[str] | Sequence[int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    kind: str
    at: datetime
    detail: Mapping[str, EventValue]


@dataclass(frozen=True, slots=True, kw_only=True)
class LogLine:
    level: str  # info | warning
    event: str
    fields: Mapping[str, EventValue]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptRecord:
    """The reply as sent, kept so a duplicate gets it byte for byte."""

    kind: ReceiptKind
    content_type: str
    body: bytes
    reply_ebms_message_id: str | None
    at: datetime
    apprec_xml: bytes | None = None
    apprec_id: str | None = None
    apprec_status: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Mail:
    """One email for the outbox; the sender loop sends it after the commit."""

    recipient: str
    subject: str
    body: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryRecord:
    """What an accepted message establishes: its content against the history it was checked
    with (`before`, so only changed pairs are written)."""

    environment: str
    content: ContentResult
    before: IplosHistory
    # a message rejected because none of its rows was taken: only its løpenummer are kept
    # (received, so not missing: issue 21)
    received_only: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimKey:
    """A dedup claim (sender, MessageId) to give up: a temporary failure must not be replayed
    to the retry."""

    from_party_id: str
    ebms_message_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """The dedup claim (sender, MessageId) to make in the write transaction: its primary key
    decides a race between two copies of one message."""

    key: ClaimKey
    content_sha256: str


@dataclass(slots=True, kw_only=True)
class Outcome:
    """One request's outcome, filled in by the steps of `IntakeCore` (mutable: the steps
    run in order and each adds its part). `None` fields leave the message row's column as
    stored with the request."""

    message_id: int | None = None  # the row's id: known in the write transaction
    # the message's, copied onto its findings (the error list reads one index range)
    environment: str | None = None
    received_at: datetime | None = None
    status: MessageStatus = MessageStatus.RECEIVED
    completed_at: datetime | None = None
    # the message row's fields learned while processing
    raw: bytes | None = None  # the whole body, once the sender is authenticated
    sender_party_id: int | None = None
    payload_bytes: int | None = None
    msghead_sha256: str | None = None
    msghead_msg_id: str | None = None
    msghead_type: str | None = None
    kommune_nr: str | None = None
    notification_count: int | None = None
    # the rows that belong to the message
    events: list[Event] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # file findings under a municipality only when it is one of these (None: any)
    findings_kommuner: frozenset[str] | None = None
    receipt: ReceiptRecord | None = None
    mails: list[Mail] = field(default_factory=list)
    history: HistoryRecord | None = None
    release_claim: ClaimKey | None = None
    claim: Claim | None = None
    history_read: HistoryRead | None = None  # the history the content was checked against
    # the emails name the message's id, known only in the write transaction
    mails_for: Callable[[int], list[Mail]] | None = None
    # log lines that name the message: written once it is stored, with its id
    log_lines: list[LogLine] = field(default_factory=list)

    def log(self, level: str, event: str, /, **fields: EventValue) -> None:
        """A log line about the message, written with its id once it is stored (a check that
        lost a race and ran again logs only once)."""
        self.log_lines.append(LogLine(level=level, event=event, fields=fields))

    def event(self, kind: str, /, **detail: EventValue) -> None:
        """Log a processing step that happens now."""
        self.event_at(datetime.now(UTC), kind, **detail)

    def event_at(self, at: datetime, kind: str, /, **detail: EventValue) -> None:
        self.events.append(Event(kind=kind, at=at, detail=detail))
