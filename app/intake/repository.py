"""All SQL of the intake but the IPLOS history's (app/intake/history.py): the request's row,
the reads the steps need (dedup claim, MsgId reuse, stored replies), and `store_outcome`,
which writes what processing decided."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from app.core.findings import Finding
from app.core.xmlparse import xml_safe
from app.intake import history, totals
from app.intake.outcome import ClaimKey, HistoryRecord, Outcome, ReceiptRecord
from app.models import (
    Base,
    Message,
    MessageDedup,
    MessageEvent,
    NotificationOutbox,
    Receipt,
)
from app.models import Finding as FindingRow
from app.query.totals import Windows
from app.register import episodes
from app.register import store as register_store
from app.register.protect import Protector
from app.register.store import MeldingRecord
from app.statuses import ANSWERED, ReceiptKind

# Column widths of the keys the intake looks values up by (see app.models).
FROM_PARTY_WIDTH = 100
EBMS_MESSAGE_ID_WIDTH = 500
MSGHEAD_MSG_ID_WIDTH = 200


def fit(value: str, width: int) -> str:
    """`value` made to fit a column of `width` characters (width > 65) and still identify it:
    unchanged when it fits, else its start plus '~' and its SHA-256. Senders control these
    values (ebMS and MsgHead ids have no length limit); PostgreSQL refuses an overlong value."""
    if len(value) <= width:
        return value
    return value[: width - 65] + "~" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def _exact(value: str | None, width: int) -> str | None:
    """A value for a narrow column that must hold it exactly (fid, GUID, kommunenr), or None
    when it is too long: such a value is invalid anyway and the finding's detail says so."""
    return value if value is not None and len(value) <= width else None


async def add_message(session: AsyncSession, message: Message) -> int:
    """Store the request's row (its id keys the dedup claim and everything stored later)."""
    session.add(message)
    await session.flush()
    return message.id


async def claim_message_id(
    session: AsyncSession,
    from_party_id: str,
    ebms_message_id: str,
    message_id: int,
    content_sha256: str,
) -> None:
    """Claim (sender, MessageId) for the message; raises IntegrityError when already taken
    (on PostgreSQL it first waits for a concurrent claimer to commit or roll back)."""
    session.add(
        MessageDedup(
            from_party_id=fit(from_party_id, FROM_PARTY_WIDTH),
            ebms_message_id=fit(ebms_message_id, EBMS_MESSAGE_ID_WIDTH),
            message_id=message_id,
            content_sha256=content_sha256,
        )
    )
    await session.flush()


def record_header(
    message: Message,
    *,
    ebms_message_id: str | None,
    cpa_id: str | None,
    from_her: str | None,
    conversation_id: str | None = None,
    ref_to_message_id: str | None = None,
    service: str | None = None,
    action: str | None = None,
    to_her: str | None = None,
) -> None:
    """The ebMS header's fields on the message row, made to fit their columns (senders
    control their length): the lookup keys by `fit`, the rest cut."""
    message.ebms_message_id = (
        fit(ebms_message_id, EBMS_MESSAGE_ID_WIDTH) if ebms_message_id else None
    )
    message.conversation_id = _cut(conversation_id, 500)
    message.ref_to_message_id = _cut(ref_to_message_id, 500)
    message.cpa_id = _cut(cpa_id, 200)
    message.service = _cut(service, 200)
    message.action = _cut(action, 200)
    # the same key the dedup claim uses, so a transient failure can find and release it
    message.from_party_id = fit(from_her, FROM_PARTY_WIDTH) if from_her else None
    message.to_party_id = _cut(to_her, 100)


def _cut(value: str | None, width: int) -> str | None:
    return value[:width] or None if value else None


async def find_claim(
    session: AsyncSession, from_party_id: str, ebms_message_id: str
) -> MessageDedup | None:
    key = (fit(from_party_id, FROM_PARTY_WIDTH), fit(ebms_message_id, EBMS_MESSAGE_ID_WIDTH))
    row: MessageDedup | None = await session.get(MessageDedup, key)
    return row


async def receipt_for(session: AsyncSession, message_id: int) -> Receipt | None:
    row: Receipt | None = await session.scalar(
        select(Receipt).where(Receipt.message_id == message_id).options(undefer(Receipt.body))
    )
    return row


async def known_message_id(
    session: AsyncSession, ebms_message_id: str, parties: Sequence[str]
) -> bool:
    """Is `ebms_message_id` a message we received from, or sent to, one of `parties`?"""
    received = await session.scalar(
        select(MessageDedup.message_id).where(
            MessageDedup.ebms_message_id == fit(ebms_message_id, EBMS_MESSAGE_ID_WIDTH),
            MessageDedup.from_party_id.in_([fit(p, FROM_PARTY_WIDTH) for p in parties]),
        )
    )
    if received is not None:
        return True
    sent = await session.scalar(
        select(Receipt.id).where(Receipt.reply_ebms_message_id == ebms_message_id)
    )
    return sent is not None


@dataclass(frozen=True, slots=True)
class EarlierUse:
    """An earlier message of the same sender with the same MsgHead MsgId."""

    message_id: int
    status: str
    msghead_sha256: str | None
    received_at: datetime


async def msghead_id_uses(
    session: AsyncSession,
    sender_party_id: int,
    msg_id: str,
    except_message: int | None = None,
    *,
    environment: str | None = None,
) -> list[EarlierUse]:
    """Earlier answered messages of this sender with this MsgId, oldest first; with
    `environment`, only those to addresses of that environment (pilot, test and production
    never see each other's history: issue 21)."""
    rows = await session.execute(
        select(Message.id, Message.status, Message.msghead_sha256, Message.received_at)
        .where(
            Message.sender_party_id == sender_party_id,
            Message.msghead_msg_id == fit(msg_id, MSGHEAD_MSG_ID_WIDTH),
            *([Message.id != except_message] if except_message is not None else []),
            *([Message.environment == environment] if environment is not None else []),
            Message.status.in_(sorted(ANSWERED)),
        )
        .order_by(Message.id)
    )
    return [EarlierUse(i, st, h, at) for i, st, h, at in rows.all()]


async def stored_apprec(session: AsyncSession, message_id: int) -> Receipt | None:
    """The AppRec receipt of a message, with the AppRec XML as it was sent."""
    row: Receipt | None = await session.scalar(
        select(Receipt)
        .where(Receipt.message_id == message_id, Receipt.kind == ReceiptKind.APPREC)
        .options(undefer(Receipt.apprec_xml))
    )
    return row


async def store_outcome(
    session: AsyncSession, outcome: Outcome, windows: Windows, protector: Protector
) -> None:
    """Everything one request's processing decided, written set-based in the caller's
    transaction (the intake's one commit): the message row's fields, its events, findings,
    receipt, queued emails, history and register store, a dedup claim given up, and what the
    message adds to the running totals (coverage, stats) and corrects in earlier error
    lists. Identifiers are sealed with `protector`. The feed's sequence number comes last:
    its counter stays locked until the commit."""
    message_id = outcome.message_id
    if message_id is None:
        raise ValueError("store_outcome needs the message row (IntakeCore._write adds it)")
    await _update_message(session, outcome)
    await _insert(session, MessageEvent, _event_rows(outcome))
    await _insert(session, FindingRow, _finding_rows(outcome, protector))
    if outcome.receipt is not None:
        await _insert(session, Receipt, [_receipt_row(message_id, outcome.receipt)])
    await _insert(session, NotificationOutbox, _mail_rows(outcome))
    melding_id: int | None = None
    if outcome.history is not None and outcome.history.received_only:
        h = outcome.history
        await history.store_received(session, h.environment, h.content, h.before)
    elif outcome.history is not None:
        h = outcome.history
        await history.store_history(
            session, message_id, h.environment, h.content, h.before, protector
        )
        stored = await register_store.store_melding(
            session, _melding_record(outcome, message_id, h), protector
        )
        melding_id = stored.id
        await episodes.update_episodes(session, stored.id, stored.own)
    if outcome.release_claim is not None:
        await _release_claim(session, message_id, outcome.release_claim)
    await totals.record_message(session, message_id, windows)
    if melding_id is not None and outcome.history is not None:  # never for received_only
        await register_store.assign_feed_seq(session, outcome.history.environment, melding_id)


def _melding_record(outcome: Outcome, message_id: int, h: HistoryRecord) -> MeldingRecord:
    receipt = outcome.receipt
    return MeldingRecord(
        message_id=message_id,
        environment=h.environment,
        received_at=outcome.received_at or datetime.now(UTC),
        apprec_id=receipt.apprec_id if receipt else None,
        apprec_status=receipt.apprec_status if receipt else None,
        content=h.content,
    )


async def _update_message(session: AsyncSession, outcome: Outcome) -> None:
    values: dict[str, object] = {"status": outcome.status.value}
    learned = {
        "completed_at": outcome.completed_at,
        "sender_party_id": outcome.sender_party_id,
        "payload_bytes": outcome.payload_bytes,
        "msghead_sha256": outcome.msghead_sha256,
        "msghead_msg_id": outcome.msghead_msg_id,
        "msghead_type": outcome.msghead_type,
        "kommune_nr": outcome.kommune_nr,
        "notification_count": outcome.notification_count,
    }
    values.update({k: v for k, v in learned.items() if v is not None})
    if outcome.raw is not None:  # the whole body replaces the unauthenticated prefix
        values.update(raw=outcome.raw, raw_ref=None)
    table = _table(Message)
    await session.execute(update(table).where(table.c.id == outcome.message_id).values(values))


def _event_rows(outcome: Outcome) -> list[dict[str, object]]:
    return [
        {"message_id": outcome.message_id, "kind": e.kind, "at": e.at, "detail": dict(e.detail)}
        for e in outcome.events
    ]


def _finding_rows(outcome: Outcome, protector: Protector) -> list[dict[str, object]]:
    """A message may carry one finding per notification (100 000). A finding is filed under
    its municipality only when the sending party may report for it (`findings_kommuner`),
    so no one else's error list can show it. The fid it names is sealed."""
    allowed = outcome.findings_kommuner

    def kommune(f: Finding) -> str | None:
        value = (_exact(f.subject.kommune_nr, 4) if f.subject else None) or outcome.kommune_nr
        return None if allowed is not None and value not in allowed else value

    return [
        {
            "message_id": outcome.message_id,
            "rule_id": f.rule.id,
            "layer": f.rule.layer.value,
            "severity": f.severity.value,
            "consequence": f.rule.consequence.value,
            "apprec_code": f.rule.apprec_code,
            # sender text may hold control characters; PostgreSQL text cannot hold NUL
            "location": xml_safe(f.location)[:500],
            "detail": xml_safe(f.detail),
            "notification_guid": _exact(f.subject.notification_guid, 36) if f.subject else None,
            "bruker_nr": _fit_optional(f.subject.bruker_nr, 100) if f.subject else None,
            "fid": protector.seal_optional(_exact(f.subject.fid, 11) if f.subject else None),
            "kommune_nr": kommune(f),
            "lopenr": f.subject.lopenr if f.subject else None,
            "environment": outcome.environment,
            "received_at": outcome.received_at,
        }
        for f in outcome.findings
    ]


def _receipt_row(message_id: int, r: ReceiptRecord) -> dict[str, object]:
    return {
        "message_id": message_id,
        "kind": r.kind.value,
        "content_type": r.content_type,
        "body": r.body,
        "reply_ebms_message_id": r.reply_ebms_message_id,
        "apprec_xml": r.apprec_xml,
        "apprec_id": r.apprec_id,
        "apprec_status": r.apprec_status,
        "created_at": r.at,
    }


def _mail_rows(outcome: Outcome) -> list[dict[str, object]]:
    return [
        {
            "message_id": outcome.message_id,
            "recipient": m.recipient,
            "subject": m.subject,
            "body": m.body,
            "next_attempt_at": m.at,
            "created_at": m.at,
        }
        for m in outcome.mails
    ]


async def _release_claim(session: AsyncSession, message_id: int, key: ClaimKey) -> None:
    """Give up this message's claim on (sender, MessageId), so a retry is processed afresh
    (only its own: another message's claim stays)."""
    table = _table(MessageDedup)
    await session.execute(
        delete(table).where(
            table.c.from_party_id == fit(key.from_party_id, FROM_PARTY_WIDTH),
            table.c.ebms_message_id == fit(key.ebms_message_id, EBMS_MESSAGE_ID_WIDTH),
            table.c.message_id == message_id,
        )
    )


async def _insert(
    session: AsyncSession, model: type[Base], rows: Sequence[dict[str, object]]
) -> None:
    """Core executemany in batches: the ORM's unit of work costs more than the inserts."""
    table = _table(model)
    for start in range(0, len(rows), _BATCH):
        await session.execute(insert(table), rows[start : start + _BATCH])


_BATCH = 1000


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _fit_optional(value: str | None, width: int) -> str | None:
    return fit(value, width) if value is not None else None
