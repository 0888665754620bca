"""The ebXML HTTP binding's choice of answer (issue 26), made after the intake has stored the
message and its reply: the reply stays in the HTTP exchange unless the sender's CPA says
`syncReplyMode="none"` for the channel it sent on; then the request gets an empty 200 and the
same stored reply goes to the CPA's endpoint through the reply outbox.

Only an authenticated sender's row is looked at (`message.sender_party_id`: set once the
envelope signature, the signer and the payload were verified), and only its signed CPAId
chooses the CPA. A sender's Acknowledgment of one of our replies is recorded here too.
Nothing here fails a request: any error keeps the synchronous reply."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.ebxml.envelope import ACTION_ACKNOWLEDGMENT
from app.models import Message
from app.platform.logs import get_logger
from app.replies import repository as repo
from app.replies.decide import Decision, decide, shown_endpoint
from app.state import AppState
from app.statuses import MessageStatus

log = get_logger(__name__)


async def answer_asynchronously(state: AppState, *, request_id: str, status_code: int) -> bool:
    """True when the stored reply was queued for the sender's endpoint (the request is then
    answered with an empty 200); False: answer as the intake replied."""
    if status_code not in (200, 204) or not request_id:
        return False
    try:
        async with state.sessions() as session:
            message = await repo.message_by_request(session, request_id)
            if message is None or message.sender_party_id is None:  # not authenticated
                return False
            if status_code == 204:
                await _acknowledgment(state, session, message)
                return False
            queued = await _route(state, session, message)
    except Exception as exc:  # the reply is stored: the sender gets it in the exchange
        log.error("replies.route_failed", error_type=type(exc).__name__)
        return False
    if queued:
        state.reply_wakeup.set()
    return queued


def _now() -> datetime:
    return datetime.now(UTC)


def _writer(state: AppState) -> contextlib.AbstractAsyncContextManager[object]:
    lock = state.sqlite_writer
    return lock if lock is not None else contextlib.nullcontext()


async def _route(state: AppState, session: AsyncSession, message: Message) -> bool:
    assert message.sender_party_id is not None
    channels = await repo.channels_of(session, message.sender_party_id, message.cpa_id)
    decision = decide(
        channels, message.service, message.action, mail_sender=state.reply_mailer is not None
    )
    if decision.route is None:
        if decision.fallback is not None:
            await _fallback(state, session, message, decision)
        return False
    stored = await repo.stored_reply(session, message)
    if stored is None:  # a MessageError stored without a receipt cannot happen; keep it sync
        return False
    await session.commit()  # the reads' transaction ends: the write starts afresh
    now = _now()
    async with _writer(state):
        reply_id, new = await repo.queue_reply(
            session, stored, decision.route, party_id=message.sender_party_id, now=now
        )
        detail = {
            "reply": reply_id,
            "channel": decision.route.channel,
            "endpoint": shown_endpoint(decision.route.endpoint),
            "mode": decision.mode,
        }
        if stored.message_id != message.id:  # a duplicate: the original's reply again
            repo.add_event(
                session, message.id, "reply_queued", now, original=stored.message_id, **detail
            )
            repo.add_event(
                session, stored.message_id, "reply_requeued", now, duplicate=message.id, **detail
            )
        else:
            repo.add_event(
                session, message.id, "reply_queued" if new else "reply_requeued", now, **detail
            )
        await session.commit()
    log.info(
        "replies.queued", message_id=message.id, reply_id=reply_id, channel=decision.route.channel
    )
    return True


async def _fallback(
    state: AppState, session: AsyncSession, message: Message, decision: Decision
) -> None:
    """The CPA asks for a separate reply but names no endpoint KPR can use: the synchronous
    reply, and an event saying why."""
    assert decision.fallback is not None
    await session.commit()
    async with _writer(state):
        repo.add_event(
            session,
            message.id,
            "reply_synchronous",
            _now(),
            reason=decision.fallback.value,
            mode=decision.mode,
        )
        await session.commit()
    log.warning(
        "replies.synchronous_fallback", message_id=message.id, reason=decision.fallback.value
    )


async def _acknowledgment(state: AppState, session: AsyncSession, message: Message) -> None:
    """A signed Acknowledgment from the party for one of our replies: recorded on it."""
    if message.status != MessageStatus.SIGNAL or message.action != ACTION_ACKNOWLEDGMENT:
        return
    if not message.ref_to_message_id or message.sender_party_id is None:
        return
    await session.commit()
    now = _now()
    async with _writer(state):
        replied = await repo.acknowledge(
            session,
            party_id=message.sender_party_id,
            ref_to=message.ref_to_message_id,
            ack_message_id=message.id,
            now=now,
        )
        if replied is None:
            return
        repo.add_event(session, replied, "reply_acknowledged", now, acknowledgment=message.id)
        await session.commit()
    log.info("replies.acknowledged", message_id=replied, acknowledgment=message.id)
