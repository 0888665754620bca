"""/api/v1/messages: what the intake received, for operators (all) and municipalities (their
own; anything else answers 404 exactly as a missing id)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.access import log_access, only_kommune
from app.api.deps import AnyPrincipal, Operator
from app.api.paging import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    decode_cursor,
    decode_keyset,
    encode_cursor,
    page,
)
from app.api.problems import PROBLEM_RESPONSES
from app.api.replies import ReplyOut, replies_out
from app.auth.tokens import Principal
from app.http_deps import DbSession, app_state
from app.models import Message, NotificationOutbox, utcnow
from app.query import messages as repo
from app.query.feilliste import fid_hidden_for

router = APIRouter(prefix="/api/v1", tags=["messages"], responses=PROBLEM_RESPONSES)

MessageId = Annotated[int, Path(ge=1, lt=2**63, description="KPR's message reference")]
KommuneNr = Annotated[str, Query(pattern=r"^[0-9]{4}$", description="4-digit kommunenummer")]


class MessageStatus(StrEnum):
    RECEIVED = "RECEIVED"
    OK = "OK"
    AVVIST = "AVVIST"
    OK_FEIL_I_DELMELDING = "OK_FEIL_I_DELMELDING"
    MESSAGE_ERROR = "MESSAGE_ERROR"
    DUPLICATE = "DUPLICATE"
    SIGNAL = "SIGNAL"
    FAILED = "FAILED"


class Environment(StrEnum):
    PILOT = "pilot"
    TEST = "test"
    PRODUCTION = "production"


class Transport(StrEnum):
    """How a message came (issue 24)."""

    EBXML_HTTP = "ebxml-http"
    AMQP = "amqp"
    EBXML_SMTP = "ebxml-smtp"


class MessageOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "received_at": "2018-11-20T11:00:00Z",
                    "status": "OK_FEIL_I_DELMELDING",
                    "environment": "pilot",
                    "kommune_nr": "0301",
                    "sender_her_id": "8000001",
                    "receiver_her_id": "131725",
                    "ebms_message_id": "c1f0a6e2-0f57-4a51-9d1e-4a0c1c1a6f3b@kommune.example",
                    "msghead_msg_id": "8b8148f6-b38a-488c-a65e-d389b74d0fb1",
                    "msghead_type": "KPR_IPL",
                    "notification_count": 120,
                    "apprec_status": "3",
                }
            ]
        }
    )

    id: int
    received_at: datetime
    status: str
    environment: str | None
    kommune_nr: str | None
    sender_her_id: str | None
    receiver_her_id: str | None
    ebms_message_id: str | None
    msghead_msg_id: str | None
    msghead_type: str | None
    notification_count: int | None
    apprec_status: str | None = Field(description="AppRec status (kodeverk 8258): 1, 2 or 3")


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")


class EventOut(BaseModel):
    at: datetime
    kind: str
    detail: dict[str, Any]


class RuleCountOut(BaseModel):
    rule_id: str
    severity: str
    apprec_code: str | None
    count: int


class ReceiptOut(BaseModel):
    kind: str = Field(description="apprec | message_error")
    apprec_status: str | None
    apprec_id: str | None
    reply_ebms_message_id: str | None
    created_at: datetime
    code_counts: dict[str, int] = Field(description="errors per AppRec code (kodeverk 8221)")


class NotificationOut(BaseModel):
    id: int
    kind: str
    status: str = Field(description="pending | sent | failed")
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class MessageDetail(MessageOut):
    ref_to_message_id: str | None
    conversation_id: str | None
    cpa_id: str | None
    service: str | None
    action: str | None
    size_bytes: int
    payload_bytes: int | None
    completed_at: datetime | None
    timeline: list[EventOut]
    finding_counts: list[RuleCountOut]
    receipt: ReceiptOut | None
    notifications: list[NotificationOut]
    replies: list[ReplyOut] = Field(
        description="the reply sent as a message of its own (the sender's CPA asked for it), "
        "with every delivery try; empty when it was answered in the HTTP exchange"
    )


class FindingOut(BaseModel):
    id: int
    rule_id: str
    layer: str
    severity: str
    consequence: str
    apprec_code: str | None
    location: str
    detail: str
    kommune_nr: str | None
    notification_guid: str | None
    bruker_nr: str | None = Field(description="personal data: reads are access-logged")
    fid: str | None = Field(description="personal data: reads are access-logged")


class FindingPage(BaseModel):
    items: list[FindingOut]
    next_cursor: str | None


def _not_found(message_id: int) -> HTTPException:
    return HTTPException(404, f"no message {message_id}")


async def _visible(session: DbSession, message_id: int, who: Principal) -> Message:
    message = await repo.get_message(session, message_id, only_kommune=only_kommune(who))
    if message is None:
        raise _not_found(message_id)
    return message


@router.get("/messages", response_model=MessagePage, summary="Received messages, newest first")
async def list_messages(
    session: DbSession,
    who: AnyPrincipal,
    kommune: KommuneNr | None = None,
    sender_her_id: Annotated[int | None, Query(ge=1, lt=2**63)] = None,
    receiver_her_id: Annotated[int | None, Query(ge=1, lt=2**63)] = None,
    environment: Environment | None = None,
    status: MessageStatus | None = None,
    received_from: datetime | None = None,
    received_to: datetime | None = None,
    msg_id: Annotated[
        str | None, Query(max_length=500, description="MsgHead MsgId or ebXML MessageId")
    ] = None,
    rule: Annotated[str | None, Query(max_length=60, description="has a finding of rule")] = None,
    apprec_code: Annotated[str | None, Query(max_length=10)] = None,
    transport: Transport | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> MessagePage:
    """Filters combine with AND. A municipality sees only its own messages."""
    for value in (received_from, received_to):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, "received_from/received_to need a time zone (e.g. Z)")
    where = repo.MessageFilter(
        kommune=kommune,
        sender_her_id=sender_her_id,
        receiver_her_id=receiver_her_id,
        environment=environment.value if environment else None,
        status=status.value if status else None,
        received_from=received_from,
        received_to=received_to,
        msg_id=msg_id,
        rule=rule,
        apprec_code=apprec_code,
        transport=transport.value if transport else None,
    )
    rows = await repo.list_messages(
        session,
        where,
        only_kommune=only_kommune(who),
        before=decode_keyset(cursor),
        limit=limit + 1,
    )
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1].id, items[-1].received_at) if len(rows) > limit else None
    return MessagePage(
        items=[MessageOut.model_validate(r, from_attributes=True) for r in items],
        next_cursor=next_cursor,
    )


def _notification_out(row: NotificationOutbox) -> NotificationOut:
    return NotificationOut.model_validate(row, from_attributes=True)


@router.get("/messages/{message_id}", response_model=MessageDetail, summary="One message")
async def get_message(
    message_id: MessageId, session: DbSession, who: AnyPrincipal
) -> MessageDetail:
    """Header fields, the processing timeline, findings per rule, the receipt, the
    notification emails' state and an asynchronous reply's delivery. No personal data."""
    message = await _visible(session, message_id, who)
    receipt = await repo.receipt_of(session, message_id, with_xml=False)
    counts = await repo.finding_counts(session, message_id, only_kommune=only_kommune(who))
    code_counts: dict[str, int] = {}
    for c in counts:
        if c.severity == "error" and c.apprec_code:
            code_counts[c.apprec_code] = code_counts.get(c.apprec_code, 0) + c.count
    summary = await repo.summary_of(session, message_id)
    assert summary is not None  # visible a moment ago, in this transaction
    return MessageDetail(
        **MessageOut.model_validate(summary, from_attributes=True).model_dump(),
        ref_to_message_id=message.ref_to_message_id,
        conversation_id=message.conversation_id,
        cpa_id=message.cpa_id,
        service=message.service,
        action=message.action,
        size_bytes=message.size_bytes,
        payload_bytes=message.payload_bytes,
        completed_at=message.completed_at,
        timeline=[
            EventOut(at=e.at, kind=e.kind, detail=e.detail)
            for e in await repo.message_events(session, message_id)
        ],
        finding_counts=[RuleCountOut.model_validate(c, from_attributes=True) for c in counts],
        receipt=(
            ReceiptOut(
                kind=receipt.kind,
                apprec_status=receipt.apprec_status,
                apprec_id=receipt.apprec_id,
                reply_ebms_message_id=receipt.reply_ebms_message_id,
                created_at=receipt.created_at,
                code_counts=code_counts,
            )
            if receipt is not None
            else None
        ),
        notifications=[_notification_out(n) for n in await repo.outbox_of(session, message_id)],
        replies=await replies_out(session, message_id),
    )


@router.get(
    "/messages/{message_id}/findings", response_model=FindingPage, summary="A message's findings"
)
async def list_findings(
    message_id: MessageId,
    request: Request,
    session: DbSession,
    who: AnyPrincipal,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> FindingPage:
    """Paged by finding id. A page that names a person (fid or brukerNr) is access-logged."""
    await _visible(session, message_id, who)
    rows = await repo.list_findings(
        session,
        message_id,
        only_kommune=only_kommune(who),
        after_id=decode_cursor(cursor),
        limit=limit + 1,
    )
    items, next_cursor = page(rows, limit, rows[limit - 1].id if len(rows) > limit else None)
    protector = app_state(request).keyring.register
    out = [
        FindingOut.model_validate(f, from_attributes=True).model_copy(
            update={"fid": protector.open_optional(f.fid)}
        )
        for f in items
    ]
    if not who.is_operator:
        # message-level findings have no municipality: never name a person in them
        out = [
            f if f.kommune_nr is not None else f.model_copy(update={"fid": None, "bruker_nr": None})
            for f in out
        ]
        # the error list's Person-ID switches hold here too
        publish = app_state(request).settings.feilliste_publish_fid
        if not publish or await fid_hidden_for(session, who.kommune_nr or ""):
            out = [f.model_copy(update={"fid": None}) for f in out]
    if any(f.fid or f.bruker_nr for f in out):
        log_access(
            session,
            request,
            who,
            "messages.findings",
            message_ids=[message_id],
            kommune_nr=who.kommune_nr,
        )
        await session.commit()
    return FindingPage(items=out, next_cursor=next_cursor)


@router.get(
    "/messages/{message_id}/apprec",
    summary="The AppRec XML as sent (before encryption; access-logged)",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}, "description": "AppRec XML"}},
)
async def get_apprec(
    message_id: MessageId, request: Request, session: DbSession, who: AnyPrincipal
) -> Response:
    """Personal data (it names failing notifications by brukerNr): every read is
    access-logged in the same transaction."""
    await _visible(session, message_id, who)
    receipt = await repo.receipt_of(session, message_id, with_xml=True)
    if receipt is None or receipt.apprec_xml is None:
        raise HTTPException(404, f"message {message_id} has no AppRec")
    log_access(
        session,
        request,
        who,
        "messages.apprec",
        message_ids=[message_id],
        kommune_nr=who.kommune_nr,
    )
    await session.commit()
    return Response(receipt.apprec_xml, media_type="application/xml")


@router.get(
    "/messages/{message_id}/raw",
    summary="The raw bytes as received (operators; access-logged)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "raw body"}},
)
async def get_raw(
    message_id: MessageId, request: Request, session: DbSession, who: Operator
) -> Response:
    message = await _visible(session, message_id, who)
    raw, _content_type = await repo.raw_bytes(session, message_id)
    if raw is None:
        raise HTTPException(404, f"the raw bytes of message {message_id} were not kept")
    log_access(
        session,
        request,
        who,
        "messages.raw",
        kommune_nr=message.kommune_nr,
        message_ids=[message_id],
    )
    await session.commit()
    # served as bytes, never rendered: the sender controls them
    return Response(
        raw,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="message-{message_id}.bin"'},
    )


@router.post(
    "/messages/{message_id}/notify",
    response_model=list[NotificationOut],
    status_code=202,
    summary="Queue the notification email again",
)
async def notify_again(
    message_id: MessageId, session: DbSession, who: Operator
) -> list[NotificationOut]:
    """A new pending outbox row per recipient of the message's latest email."""
    await _visible(session, message_id, who)
    rows = await repo.requeue_notification(session, message_id, utcnow())
    if not rows:
        raise HTTPException(409, f"message {message_id} never had a notification email")
    await session.commit()
    return [_notification_out(r) for r in rows]
