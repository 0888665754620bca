"""The SQL of retention: set-based, each returning the ids it touched.

What stays (the audit skeleton): every message row with its transport ids, sizes, hashes,
status and times, its event log, its findings' rules and texts, the exact replies (so a
resend still gets its reply byte for byte), the dedup claims and the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    AccessLog,
    Finding,
    IplosBruker,
    IplosEvent,
    IplosNotification,
    Message,
)
from app.register.confirmed import unconfirmed_messages
from app.register.models import Melding


def _received_before(before: datetime) -> object:
    return select(Message.id).where(Message.received_at < before).scalar_subquery()


async def remove_raw(
    session: AsyncSession, before: datetime, note: str, loader_environments: Sequence[str]
) -> list[int]:
    """Request bodies received before `before`, but those whose register rows KPR's loader
    (of `loader_environments`) has not confirmed: until then they are the register's only
    second copy."""
    result = await session.execute(
        update(Message)
        .where(
            Message.received_at < before,
            Message.raw.is_not(None),
            Message.id.not_in(unconfirmed_messages(loader_environments)),
        )
        .values(raw=None, raw_ref=note)
        .returning(Message.id)
    )
    return list(result.scalars())


async def remove_finding_subjects(session: AsyncSession, before: datetime) -> list[int]:
    """brukerNr and fødselsnummer out of findings; the rule, place and text stay."""
    result = await session.execute(
        update(Finding)
        .where(
            Finding.message_id.in_(_received_before(before)),  # type: ignore[arg-type]
            (Finding.bruker_nr.is_not(None)) | (Finding.fid.is_not(None)),
        )
        .values(bruker_nr=None, fid=None)
        .returning(Finding.message_id)
    )
    return sorted(set(result.scalars()))


async def remove_register_rows(
    session: AsyncSession, before: datetime, loader_environments: Sequence[str]
) -> list[int]:
    """The register store's rows (melding and, by cascade, its contacts, municipalities,
    notifications and events) of messages received before `before` that the loader has
    confirmed, or in an environment no loader takes. Episodes stay: they are the register's
    running state and name no one in clear."""
    result = await session.execute(
        delete(Melding)
        .where(
            Melding.message_id.in_(_received_before(before)),  # type: ignore[arg-type]
            Melding.message_id.not_in(unconfirmed_messages(loader_environments)),
        )
        .returning(Melding.message_id)
    )
    return sorted(set(result.scalars()))


async def remove_history(session: AsyncSession, before: datetime) -> tuple[list[int], int]:
    """Notifications (with their events) of messages received before `before`, and the
    brukerNr-fid pairs not confirmed since. Returns the messages touched and pairs removed."""
    old = select(IplosNotification.id).where(
        IplosNotification.message_id.in_(_received_before(before))  # type: ignore[arg-type]
    )
    await session.execute(delete(IplosEvent).where(IplosEvent.notification_id.in_(old)))
    result = await session.execute(
        delete(IplosNotification)
        .where(IplosNotification.message_id.in_(_received_before(before)))  # type: ignore[arg-type]
        .returning(IplosNotification.message_id)
    )
    messages = sorted(set(result.scalars()))
    pairs = await session.execute(
        delete(IplosBruker).where(IplosBruker.updated_at < before).returning(IplosBruker.fid)
    )
    return messages, len(list(pairs.scalars()))


def log_removal(
    session: AsyncSession,
    *,
    at: datetime,
    action: str,
    resource: str,
    message_ids: list[int],
) -> None:
    session.add(
        AccessLog(
            at=at,
            actor="retention",
            role="system",
            action=action,
            resource=resource[:300],
            message_id=message_ids[0] if len(message_ids) == 1 else None,
        )
    )
