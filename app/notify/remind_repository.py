"""All SQL of the reminders: who is registered with which innsendingsansvarlig, which
reminders were already queued, and queueing one."""

from __future__ import annotations

import datetime
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import NotificationOutbox, PartyContact, PartyKommune


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    kommune_nr: str
    email: str


async def registered_contacts(session: AsyncSession) -> list[Contact]:
    """(kommune, innsendingsansvarlig email) for every registered municipality."""
    rows = await session.execute(
        select(PartyKommune.kommune_nr, PartyContact.email)
        .join(PartyContact, PartyContact.party_id == PartyKommune.party_id)
        .where(PartyContact.role == "innsendingsansvarlig")
        .distinct()
        .order_by(PartyKommune.kommune_nr, PartyContact.email)
    )
    return [Contact(kommune_nr=k, email=e) for k, e in rows.all()]


async def queued_keys(session: AsyncSession, keys: Collection[str]) -> set[str]:
    if not keys:
        return set()
    found = await session.scalars(
        select(NotificationOutbox.dedup_key).where(NotificationOutbox.dedup_key.in_(list(keys)))
    )
    return {k for k in found if k is not None}


def queue_reminder(
    session: AsyncSession,
    *,
    recipient: str,
    subject: str,
    body: str,
    kommune_nr: str,
    dedup_key: str,
    now: datetime.datetime,
) -> None:
    """Queue one reminder in the outbox (the caller flushes; the unique `dedup_key` keeps it
    to one a day)."""
    session.add(
        NotificationOutbox(
            message_id=None,
            recipient=recipient,
            subject=subject,
            body=body,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            kind="reminder",
            kommune_nr=kommune_nr,
            dedup_key=dedup_key,
        )
    )
