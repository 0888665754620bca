"""Processing the inbox: envelope checks, then the intake core through its port.

Whatever the port answers becomes outbox rows in the same transaction that marks the inbox
row done; "retry" and unexpected failures are retried from the store with back-off (the
broker has long accepted the message and never redelivers it). A report on KPR's own
`{her}_error` queue (a sender could not take one of our replies) goes into the audit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from app.amqp.addresses import ReplyQueues, reply_queues
from app.amqp.conditions import ErrorCondition
from app.amqp.core_port import InboxMessage, IntakePort, PortOutcome, Verdict
from app.amqp.envelope import (
    APPREC_SUBJECT,
    Envelope,
    Refusal,
    check,
    error_reply,
    reply,
)
from app.amqp.repository import (
    Reply,
    Sessions,
    due_inbox,
    finish_inbox,
    postpone_inbox,
    record_report,
    report_about,
)
from app.models import utcnow
from app.platform.logs import get_logger

log = get_logger(__name__)

INTERNAL = Refusal(ErrorCondition.INTERNAL_ERROR, "Meldingen kunne ikke behandles.")


def _addressed(envelope: Envelope, queue: str) -> Envelope:
    data = envelope.as_json()
    data["to"] = queue
    return Envelope.from_json(data)


def replies_for(message: InboxMessage, outcome: PortOutcome, to: ReplyQueues) -> list[Reply]:
    """The outbox rows for an outcome: the AppRec to the sender's asynchronous queue, or the
    error (empty body) to its error queue; one per inbox message and kind."""
    original = message.envelope
    if outcome.verdict is Verdict.APPREC and outcome.apprec is not None:
        envelope = reply(original, str(uuid.uuid4()), utcnow(), APPREC_SUBJECT)
        key, queue, body = f"{message.inbox_id}:apprec", to.apprec, outcome.apprec
    elif outcome.verdict is Verdict.ERROR:
        refusal = outcome.refusal or INTERNAL
        envelope = error_reply(original, str(uuid.uuid4()), utcnow(), refusal)
        key, queue, body = f"{message.inbox_id}:error", to.error, b""
    else:
        return []
    return [Reply(key, queue, _addressed(envelope, queue), body)]


async def _answer(sessions: Sessions, message: InboxMessage, outcome: PortOutcome) -> None:
    sender = message.envelope.from_her_id
    replies: list[Reply] = []
    if sender is not None:  # else nobody to tell: the audit keeps it
        async with sessions() as session:
            to = await reply_queues(session, sender)
        replies = replies_for(message, outcome, to)
    await finish_inbox(sessions, message.inbox_id, outcome.message_id, replies)


async def _error_report(sessions: Sessions, message: InboxMessage) -> None:
    """A sender's report about one of our replies: on the message it answered, if ours."""
    application = message.envelope.application
    condition = application.get("errorCondition", "")
    about = await report_about(sessions, application.get("originalMessageId", ""))
    detail = {
        "condition": condition[:100],
        "description": application.get("errorDescription", "")[:500],
        "reply": application.get("originalMessageId", "")[:200],
        "from_her_id": application.get("fromHerId", "")[:20],
    }
    await record_report(sessions, message.inbox_id, about, detail)
    log.warning(
        "amqp.error_report", inbox_id=message.inbox_id, condition=condition, message_id=about
    )


async def process_one(
    sessions: Sessions, port: IntakePort, message: InboxMessage, max_bytes: int
) -> Verdict:
    if message.queue.endswith("_error"):
        await _error_report(sessions, message)
        return Verdict.ERROR
    refusal = check(message.envelope, message.received_bytes, max_bytes)
    if refusal is not None:
        await _answer(sessions, message, PortOutcome(Verdict.ERROR, refusal=refusal))
        return Verdict.ERROR
    try:
        outcome = await port.process(message)
    except Exception as exc:  # the core failed unexpectedly: try again later
        log.exception("amqp.process_failed", inbox_id=message.inbox_id)
        outcome = PortOutcome(Verdict.RETRY, reason=type(exc).__name__)
    if outcome.verdict is Verdict.RETRY:
        await postpone_inbox(sessions, message, outcome.reason or "retry")
        return Verdict.RETRY
    await _answer(sessions, message, outcome)
    return outcome.verdict


async def process_due(
    sessions: Sessions,
    port: IntakePort,
    max_bytes: int,
    concurrency: int = 1,
    on_answer: Callable[[], object] | None = None,
) -> int:
    """Process what is due now; returns how many were handled. Senders are processed side by
    side (at most `concurrency` at once), each sender's messages in the order they came: a
    municipality's reports continue its løpenummer chain. `on_answer` is called after each
    message (its answer, if any, is in the outbox)."""
    due = await due_inbox(sessions)
    by_sender: dict[str, list[InboxMessage]] = {}
    for message in due:
        by_sender.setdefault(message.envelope.application.get("fromHerId", ""), []).append(message)
    slots = asyncio.Semaphore(concurrency)

    async def in_order(messages: list[InboxMessage]) -> None:
        async with slots:
            for message in messages:
                await process_one(sessions, port, message, max_bytes)
                if on_answer is not None:
                    on_answer()

    # every sender's run ends before the next cycle reads the inbox again
    done = await asyncio.gather(*map(in_order, by_sender.values()), return_exceptions=True)
    failed = next((e for e in done if isinstance(e, BaseException)), None)
    if failed is not None:
        raise failed
    return len(due)
