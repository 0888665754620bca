"""The reply outboxes: replies a sender's CPA asks to get as a separate message
(`reply_outbox`, migration 0027, `syncReplyMode="none"`, issue 26), delivered by
`app/replies/sender.py`; and the reply mails to messages that came by EDI mail (`edi_outbox`,
migration 0028, issue 25), sent by `app/edi/sender.py`. Both here, below the transports, so the
API reads them without importing a transport."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base, BigId, UtcDateTime, utcnow


class ReplyOutbox(Base):
    """One reply per message: the bytes are the message's stored receipt (`receipt.body`, the
    same bytes a synchronous reply carries), read when it is sent. A duplicate request or an
    operator's resend puts this row back in the queue; nothing is built anew."""

    __tablename__ = "reply_outbox"
    __table_args__ = (Index("ix_reply_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("message.id", ondelete="CASCADE"), unique=True
    )
    # the sender (its Acknowledgment of our reply is recorded only from it)
    party_id: Mapped[int | None] = mapped_column(
        ForeignKey("party.id", ondelete="SET NULL"), index=True
    )
    channel: Mapped[str] = mapped_column(String(10))  # http | mailto
    endpoint: Mapped[str] = mapped_column(String(1000))  # from the CPA, never the message
    # our reply's eb:MessageId: the RefToMessageId of the sender's Acknowledgment
    reply_ebms_message_id: Mapped[str | None] = mapped_column(String(500), index=True)
    # pending (retries left) | slow (the CPA's Retries used up) | delivered
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # every try, ever
    failures: Mapped[int] = mapped_column(Integer, default=0)  # in a row: the back-off's step
    retries: Mapped[int] = mapped_column(Integer)  # the CPA's Retries
    retry_interval_seconds: Mapped[int] = mapped_column(Integer)  # the CPA's RetryInterval
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ack_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("message.id", ondelete="SET NULL")
    )


class EdiOutbox(Base):
    """Reply mails on the EDI channel (issue 25): the ebXML reply, as the HTTP exchange would
    carry it, to the SMTP endpoint in the sender's CPA; sent by a loop with retries."""

    __tablename__ = "edi_outbox"
    __table_args__ = (Index("ix_edi_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("message.id", ondelete="SET NULL"), index=True
    )
    # "mail:<sha256>": a mail read twice (after a crash) is answered once
    dedup_key: Mapped[str] = mapped_column(String(100), unique=True)
    mail_from: Mapped[str] = mapped_column(String(320))  # the KPR address the mail came to
    recipient: Mapped[str | None] = mapped_column(String(320))  # None: the CPA names none
    content_type: Mapped[str] = mapped_column(String(1000))
    body: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
