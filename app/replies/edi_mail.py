"""A message's reply mails on the EDI channel (`edi_outbox`) as the API shows and resends them,
and where a sender takes its reply mails: the SMTP endpoint in its CPA. Below the transports:
`app/edi` queues and sends the mails, the API reads them here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Message, PartyCpa
from app.parties.channels import ReplyChannels
from app.replies.models import EdiOutbox


async def reply_address(
    session: AsyncSession,
    party_id: int,
    cpa_id: str | None,
    service: str | None,
    action: str | None,
) -> str | None:
    """The SMTP endpoint (`mailto:`) of the sender's delivery channel, from its CPAs' reply
    channels (read from CPA files or NHN's registry: `app/parties/channels.py`): the channel of
    the message's Service/Action in the CPA it names, else that CPA's default channel, else
    any mailto: channel of the party's CPAs."""
    rows = (
        await session.execute(
            select(PartyCpa.cpa_id, PartyCpa.reply_channels)
            .where(PartyCpa.party_id == party_id)
            .order_by(PartyCpa.cpa_id)
        )
    ).all()
    ordered = sorted(rows, key=lambda r: r[0] != cpa_id)  # the message's CPA first
    for _, data in ordered:
        channels = ReplyChannels.from_json(data)
        if channels is None:
            continue
        candidates = [channels.for_action(service, action), *(c for _, _, c in channels.actions)]
        endpoints = [c.endpoint for c in candidates if c is not None and c.endpoint]
        for endpoint in endpoints:
            address = mail_address(endpoint) if endpoint.lower().startswith("mailto:") else None
            if address is not None:
                return address
    return None


def mail_address(endpoint: str) -> str | None:
    """`mailto:a@b`, `mailto://a@b` (as CPAs write it) or a bare address -> `a@b`."""
    value = endpoint.strip()
    if value.lower().startswith("mailto:"):
        value = value[7:].lstrip("/")
    value = value.split("?", 1)[0]
    local, at, domain = value.partition("@")
    if not (local and at and domain) or any(c.isspace() or c in '<>,;"' for c in value):
        return None
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class EdiReply:
    """A message's reply mail as the API shows it."""

    id: int
    recipient: str | None
    status: str  # pending | sent | failed
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


async def replies_of(session: AsyncSession, message_id: int) -> list[EdiReply]:
    """The reply mails queued for a message (one per mail that carried it), oldest first."""
    o = EdiOutbox
    rows = await session.execute(
        select(
            o.id,
            o.recipient,
            o.status,
            o.attempts,
            o.next_attempt_at,
            o.last_error,
            o.created_at,
            o.sent_at,
        )
        .where(o.message_id == message_id)
        .order_by(o.id)
    )
    return [
        EdiReply(
            id=r[0],
            recipient=r[1],
            status=r[2],
            attempts=r[3],
            next_attempt_at=r[4] if r[2] == "pending" else None,
            last_error=r[5],
            created_at=r[6],
            sent_at=r[7],
        )
        for r in rows.all()
    ]


async def requeue(
    session: AsyncSession, message_id: int, replies: Sequence[EdiReply], now: datetime
) -> list[int]:
    """An operator's resend of the message's reply mails (`replies`, as `replies_of` read
    them): each due now with a fresh round of retries, the same stored bytes. A reply that
    had nowhere to go looks for the sender's SMTP endpoint again (its CPA may have been
    imported since); one that still has none stays failed, saying so. Returns the ids put
    back in the queue."""
    address = (
        await _sender_address(session, message_id)
        if any(r.recipient is None for r in replies)
        else None
    )
    queued = []
    for reply in replies:
        recipient = reply.recipient or address
        if recipient is None:
            continue
        await session.execute(
            update(EdiOutbox)
            .where(EdiOutbox.id == reply.id)
            .values(
                recipient=recipient,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                last_error=None,
            )
            .execution_options(synchronize_session=False)
        )
        queued.append(reply.id)
    return queued


async def _sender_address(session: AsyncSession, message_id: int) -> str | None:
    """The SMTP endpoint of the message's authenticated sender, from its CPAs."""
    found = (
        await session.execute(
            select(Message.sender_party_id, Message.cpa_id, Message.service, Message.action).where(
                Message.id == message_id
            )
        )
    ).first()
    if found is None or found[0] is None:
        return None
    return await reply_address(session, found[0], found[1], found[2], found[3])
