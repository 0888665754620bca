"""`repository.store_outcome`: what the intake's steps decided for one request, written in the
caller's transaction (the intake's one commit), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.findings import Finding, Subject
from app.intake import repository as repo
from app.intake import rules as intake_rules
from app.intake.outcome import ClaimKey, Mail, Outcome, ReceiptRecord
from app.models import Finding as FindingRow
from app.models import Message, MessageDedup, MessageEvent, NotificationOutbox, Receipt
from app.query.totals import windows_for
from app.statuses import MessageStatus, ReceiptKind
from tests.protector import throwaway_protector

WINDOWS = windows_for("")
PROTECTOR = throwaway_protector()

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _message(request_id: str) -> Message:
    return Message(
        received_at=AT,
        request_id=request_id,
        size_bytes=3,
        raw=b"abc",
        raw_ref="first 3 bytes: not authenticated",
        status=MessageStatus.RECEIVED,
        from_party_id="8000001",
        ebms_message_id=f"{request_id}@sender",
    )


def _finding(kommune: str | None) -> Finding:
    return Finding(
        intake_rules.INTERNAL_ERROR,
        "here",
        "detail",
        Subject(kommune_nr=kommune) if kommune else None,
    )


async def test_store_outcome_writes_every_part_of_the_outcome(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        out = Outcome(message_id=await repo.add_message(session, _message("r1")))
        out.event_at(AT, "received", size=3)
        out.event("validated", findings=3)
        out.status = MessageStatus.AVVIST
        out.completed_at = AT
        out.raw = b"the whole body"
        out.kommune_nr = "0301"
        out.msghead_msg_id = "msg-1"
        # a finding is filed under its municipality only when the party may report for it
        out.findings_kommuner = frozenset({"0301"})
        out.findings.extend([_finding("0301"), _finding("1103"), _finding(None)])
        out.receipt = ReceiptRecord(
            kind=ReceiptKind.APPREC,
            content_type="multipart/related",
            body=b"reply",
            reply_ebms_message_id="reply@kpr",
            at=AT,
            apprec_xml=b"<AppRec/>",
            apprec_id="a1",
            apprec_status="2",
        )
        out.mails.extend(
            Mail(recipient=r, subject="s", body="b", at=AT) for r in ("a@x.no", "b@x.no")
        )
        await repo.store_outcome(session, out, WINDOWS, PROTECTOR)
        await session.commit()

    async with sessions() as session:
        message = await session.get(Message, out.message_id)
        assert message is not None
        assert (message.status, message.kommune_nr, message.msghead_msg_id) == (
            "AVVIST",
            "0301",
            "msg-1",
        )
        assert message.completed_at == AT
        raw = await session.scalar(select(Message.raw).where(Message.id == out.message_id))
        assert (raw, message.raw_ref) == (b"the whole body", None)
        events = await session.scalars(select(MessageEvent).order_by(MessageEvent.id))
        assert [(e.kind, e.detail) for e in events] == [
            ("received", {"size": 3}),
            ("validated", {"findings": 3}),
        ]
        kommuner = await session.scalars(select(FindingRow.kommune_nr).order_by(FindingRow.id))
        assert list(kommuner) == ["0301", None, "0301"]
        assert out.message_id is not None
        receipt = await repo.receipt_for(session, out.message_id)
        assert receipt is not None
        assert (receipt.kind, receipt.body, receipt.apprec_status) == ("apprec", b"reply", "2")
        mails = await session.scalars(select(NotificationOutbox).order_by(NotificationOutbox.id))
        assert [(m.recipient, m.status, m.message_id) for m in mails] == [
            ("a@x.no", "pending", out.message_id),
            ("b@x.no", "pending", out.message_id),
        ]


async def test_store_outcome_is_stored_only_with_the_callers_commit(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        out = Outcome(message_id=await repo.add_message(session, _message("r2")))
        out.event("failed")
        out.findings.append(_finding(None))
        await repo.store_outcome(session, out, WINDOWS, PROTECTOR)
        await session.rollback()
    async with sessions() as session:
        assert await session.scalar(select(Message.id)) is None
        assert await session.scalar(select(MessageEvent.id)) is None
        assert await session.scalar(select(FindingRow.id)) is None
        assert await session.scalar(select(Receipt.id)) is None


async def test_store_outcome_releases_only_its_own_dedup_claim(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        first = _message("r3")
        first_id = await repo.add_message(session, first)
        await repo.claim_message_id(session, "8000001", "shared@sender", first_id, "sha")
        second_id = await repo.add_message(session, _message("r4"))
        key = ClaimKey(from_party_id="8000001", ebms_message_id="shared@sender")
        # another message's claim on the key stays
        await repo.store_outcome(
            session, Outcome(message_id=second_id, release_claim=key), WINDOWS, PROTECTOR
        )
        assert await session.scalar(select(MessageDedup.message_id)) == first_id
        await repo.store_outcome(
            session, Outcome(message_id=first_id, release_claim=key), WINDOWS, PROTECTOR
        )
        await session.commit()
    async with sessions() as session:
        assert await session.scalar(select(MessageDedup.message_id)) is None
