"""The EDI channel's table (issue 25), beside its code; registered for Alembic in
`migrations/env.py` (as the register's tables are), which keeps `app/models.py` under the
module size limit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base, BigId, UtcDateTime, utcnow


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
