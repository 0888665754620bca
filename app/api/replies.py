"""A message's asynchronous reply (issue 26) and, for a message that came by EDI mail, its
reply mails (issue 25): shown in GET /api/v1/messages/{id}, resent by an operator with
POST /api/v1/messages/{id}/replies/resend."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, Field

from app.api.access import log_access, only_kommune
from app.api.deps import Operator
from app.api.problems import PROBLEM_RESPONSES
from app.http_deps import DbSession, app_state
from app.query import messages as messages_repo
from app.replies import edi_mail as edi_outbox
from app.replies import repository as outbox
from app.replies.decide import shown_endpoint
from app.replies.edi_mail import EdiReply
from app.replies.reading import QueuedReply, replies_of

router = APIRouter(prefix="/api/v1", tags=["messages"], responses=PROBLEM_RESPONSES)

MessageId = Annotated[int, Path(ge=1, lt=2**63, description="KPR's message reference")]


class ReplyAttemptOut(BaseModel):
    at: datetime
    outcome: str = Field(description="delivered | failed")
    http_status: int | None
    error: str | None


class ReplyOut(BaseModel):
    id: int
    channel: str = Field(
        description="http | mailto (the CPA's endpoints) | edi (a reply mail to a message "
        "that came by EDI mail)"
    )
    endpoint: str = Field(
        description="from the sender's CPA (user information left out); empty for an edi "
        "reply whose sender's CPA names no SMTP endpoint"
    )
    status: str = Field(
        description="pending | slow (the CPA's retries used up) | delivered | failed (edi: "
        "no SMTP endpoint, or the retries used up; an operator's resend tries again)"
    )
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    acknowledged_at: datetime | None = Field(description="when the sender's Acknowledgment came")
    tries: list[ReplyAttemptOut]


def reply_out(reply: QueuedReply) -> ReplyOut:
    return ReplyOut(
        id=reply.id,
        channel=reply.channel,
        endpoint=shown_endpoint(reply.endpoint),
        status=reply.status,
        attempts=reply.attempts,
        next_attempt_at=reply.next_attempt_at,
        last_error=reply.last_error,
        created_at=reply.created_at,
        delivered_at=reply.delivered_at,
        acknowledged_at=reply.acknowledged_at,
        tries=[ReplyAttemptOut.model_validate(t, from_attributes=True) for t in reply.tries],
    )


def edi_reply_out(reply: EdiReply) -> ReplyOut:
    return ReplyOut(
        id=reply.id,
        channel="edi",
        endpoint=f"mailto:{reply.recipient}" if reply.recipient else "",
        status="delivered" if reply.status == "sent" else reply.status,
        attempts=reply.attempts,
        next_attempt_at=reply.next_attempt_at,
        last_error=reply.last_error,
        created_at=reply.created_at,
        delivered_at=reply.sent_at,
        acknowledged_at=None,
        tries=[],
    )


async def replies_out(session: DbSession, message_id: int) -> list[ReplyOut]:
    queued = [reply_out(r) for r in await replies_of(session, message_id)]
    mails = [edi_reply_out(r) for r in await edi_outbox.replies_of(session, message_id)]
    return queued + mails


@router.post(
    "/messages/{message_id}/replies/resend",
    response_model=list[ReplyOut],
    status_code=202,
    summary="Send the message's asynchronous reply again (operators; access-logged)",
)
async def resend_reply(
    message_id: MessageId, request: Request, session: DbSession, who: Operator
) -> list[ReplyOut]:
    """The same stored reply, due now with a fresh round of the CPA's retries (also after it
    was delivered, or once the retries went slow); for a message that came by EDI mail, its
    reply mails likewise (one without an address looks for the sender's SMTP endpoint again).
    409 when the message has no reply in an outbox (answered in the HTTP exchange; a
    duplicate's reply is its original's) or its reply mails still have nowhere to go."""
    message = await messages_repo.get_message(session, message_id, only_kommune=only_kommune(who))
    if message is None:
        raise HTTPException(404, f"no message {message_id}")
    queued = await replies_of(session, message_id)
    mails = await edi_outbox.replies_of(session, message_id)
    if not queued and not mails:
        raise HTTPException(
            409,
            f"message {message_id} has no reply in the outbox: it was answered in the HTTP "
            "exchange, or it is a duplicate (resend the original's reply)",
        )
    now = datetime.now(UTC)
    for reply in queued:
        await outbox.requeue(session, reply.id, now=now)
        outbox.add_event(session, message_id, "reply_resend", now, reply=reply.id, by=who.label)
    requeued = await edi_outbox.requeue(session, message_id, mails, now)
    for mail_id in requeued:
        outbox.add_event(session, message_id, "reply_resend", now, edi_reply=mail_id, by=who.label)
    if not queued and not requeued:
        await session.rollback()
        raise HTTPException(
            409,
            f"message {message_id}: the sender's CPA names no SMTP endpoint (mailto:) for the "
            "reply mail; import a CPA with one (kpr-mottak parties import) or refresh the party "
            "from NHN's registries, then resend",
        )
    # the reply carries the AppRec (personal data, encrypted): who sent it out again is logged
    log_access(
        session,
        request,
        who,
        "messages.replies.resend",
        message_ids=[message_id],
        kommune_nr=message.kommune_nr,
    )
    await session.commit()
    app_state(request).reply_wakeup.set()
    return await replies_out(session, message_id)
