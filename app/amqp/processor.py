"""Processing the inbox: envelope checks, then the intake core through its port.

Whatever the port answers becomes outbox rows in the same transaction that marks the inbox
row done; "retry" and unexpected failures are retried from the store with back-off (the
broker has long accepted the message and never redelivers it).
"""

from __future__ import annotations

import uuid

from app.amqp.conditions import ErrorCondition
from app.amqp.core_port import InboxMessage, IntakePort, PortOutcome, Verdict
from app.amqp.envelope import (
    APPREC_SUBJECT,
    Envelope,
    Refusal,
    check,
    error_reply,
    queue_names,
    reply,
)
from app.amqp.repository import (
    Reply,
    Sessions,
    due_inbox,
    finish_inbox,
    inbox_attempts,
    postpone_inbox,
)
from app.models import utcnow
from app.platform.logs import get_logger

log = get_logger(__name__)


def _error_to(message: InboxMessage, refusal: Refusal) -> list[Reply]:
    sender = message.envelope.from_her_id
    if sender is None:
        return []  # nobody to tell: the audit keeps it
    envelope = error_reply(message.envelope, str(uuid.uuid4()), utcnow(), refusal)
    queue = queue_names(sender)["error"]
    return [Reply(f"{message.inbox_id}:error", queue, _addressed(envelope, queue), b"")]


def _apprec_to(message: InboxMessage, apprec: bytes) -> list[Reply]:
    sender = message.envelope.from_her_id
    if sender is None:
        return []
    envelope = reply(message.envelope, str(uuid.uuid4()), utcnow(), APPREC_SUBJECT)
    queue = queue_names(sender)["async"]
    return [Reply(f"{message.inbox_id}:apprec", queue, _addressed(envelope, queue), apprec)]


def _addressed(envelope: Envelope, queue: str) -> Envelope:
    data = envelope.as_json()
    data["to"] = queue
    return Envelope.from_json(data)


def replies_for(message: InboxMessage, outcome: PortOutcome) -> list[Reply]:
    if outcome.verdict is Verdict.APPREC and outcome.apprec is not None:
        return _apprec_to(message, outcome.apprec)
    if outcome.verdict is Verdict.ERROR:
        refusal = outcome.refusal or Refusal(
            ErrorCondition.INTERNAL_ERROR, "Meldingen kunne ikke behandles."
        )
        return _error_to(message, refusal)
    return []


async def process_one(
    sessions: Sessions, port: IntakePort, message: InboxMessage, max_bytes: int
) -> Verdict:
    if message.queue.endswith("_error"):
        # a sender's report about one of our replies: kept in the inbox for the audit
        log.warning(
            "amqp.error_report",
            inbox_id=message.inbox_id,
            condition=message.envelope.application.get("errorCondition"),
        )
        await finish_inbox(sessions, message.inbox_id, None, [])
        return Verdict.ERROR
    refusal = check(message.envelope, len(message.body), max_bytes)
    if refusal is not None:
        await finish_inbox(sessions, message.inbox_id, None, _error_to(message, refusal))
        return Verdict.ERROR
    try:
        outcome = await port.process(message)
    except Exception as exc:  # the core failed unexpectedly: try again later
        log.exception("amqp.process_failed", inbox_id=message.inbox_id)
        outcome = PortOutcome(Verdict.RETRY, reason=type(exc).__name__)
    if outcome.verdict is Verdict.RETRY:
        attempts = await inbox_attempts(sessions, message.inbox_id) + 1
        await postpone_inbox(sessions, message.inbox_id, attempts, outcome.reason or "retry")
        return Verdict.RETRY
    await finish_inbox(
        sessions, message.inbox_id, outcome.message_id, replies_for(message, outcome)
    )
    return outcome.verdict


async def process_due(sessions: Sessions, port: IntakePort, max_bytes: int) -> int:
    """Process what is due now; returns how many were handled."""
    handled = 0
    for message in await due_inbox(sessions):
        await process_one(sessions, port, message, max_bytes)
        handled += 1
    return handled
