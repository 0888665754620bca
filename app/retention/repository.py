"""The SQL of retention: set-based, each returning the ids it touched.

What stays (the audit skeleton): every message row with its transport ids, sizes, hashes,
status and times, its event log, its findings' rules and texts, the exact replies (so a
resend still gets its reply byte for byte), the dedup claims and the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, not_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.apprec.redact import redact_apprec
from app.models import (
    AccessLog,
    Finding,
    IplosBruker,
    IplosEvent,
    IplosNotification,
    Message,
    Receipt,
)
from app.platform.db import chunks
from app.register.confirmed import unconfirmed_messages
from app.register.models import Episode, Hendelse, Melding, Notifikasjon

# AppRecs read and written per round: each may be a few hundred kB (100 Error elements)
REDACT_BATCH = 200


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


async def redact_apprecs(session: AsyncSession, before: datetime, now: datetime) -> list[int]:
    """brukerNr and fødselsnummer out of the stored AppRec text of messages received before
    `before` (app/apprec/redact.py), once each; run before `remove_finding_subjects`, whose
    brukerNr it masks wherever the text quotes them. The reply bytes sent stay."""
    due = list(
        (
            await session.execute(
                select(Receipt.id, Receipt.message_id).where(
                    Receipt.message_id.in_(_received_before(before)),  # type: ignore[arg-type]
                    Receipt.apprec_xml.is_not(None),
                    Receipt.apprec_redacted_at.is_(None),
                )
            )
        ).all()
    )
    receipt_ids = sorted(receipt_id for receipt_id, _ in due)
    for start in range(0, len(receipt_ids), REDACT_BATCH):
        chunk = receipt_ids[start : start + REDACT_BATCH]
        rows = (
            await session.execute(
                select(Receipt.id, Receipt.message_id, Receipt.apprec_xml).where(
                    Receipt.id.in_(chunk)
                )
            )
        ).all()
        messages = [message_id for _, message_id, _ in rows]
        named: dict[int, set[str]] = {}
        for message_id, bruker_nr in await session.execute(
            select(Finding.message_id, Finding.bruker_nr).where(
                Finding.message_id.in_(messages), Finding.bruker_nr.is_not(None)
            )
        ):
            if bruker_nr:
                named.setdefault(message_id, set()).add(bruker_nr)
        for receipt_id, message_id, xml in rows:
            if xml is None:
                continue
            await session.execute(
                update(Receipt)
                .where(Receipt.id == receipt_id)
                .values(
                    apprec_xml=redact_apprec(xml, named.get(message_id, ())),
                    apprec_redacted_at=now,
                )
            )
    return sorted(message_id for _, message_id in due)


async def remove_register_rows(
    session: AsyncSession, before: datetime, loader_environments: Sequence[str]
) -> list[int]:
    """The register store's rows (melding and, by cascade, its contacts, municipalities,
    notifications and events) of messages received before `before` in the environments no
    loader takes (pilot, test), and the episodes no stored event backs any more. In the
    loader's environments the rows stay (`remove_register_identifiers` takes their fids):
    episodes are derived from them, and a long-term stay begun years ago must keep its start."""
    result = await session.execute(
        delete(Melding)
        .where(
            Melding.message_id.in_(_received_before(before)),  # type: ignore[arg-type]
            Melding.environment.not_in(list(loader_environments)),
        )
        .returning(Melding.message_id)
    )
    removed = sorted(set(result.scalars()))
    if removed:
        backed = exists().where(
            Hendelse.environment == Episode.environment,
            Hendelse.kommune_nr == Episode.kommune_nr,
            Hendelse.bruker_nr == Episode.bruker_nr,
            Hendelse.tjeneste_id == Episode.tjeneste_id,
        )
        await session.execute(
            delete(Episode).where(
                Episode.environment.not_in(list(loader_environments)), not_(backed)
            )
        )
    return removed


async def remove_register_identifiers(
    session: AsyncSession, before: datetime, loader_environments: Sequence[str]
) -> list[int]:
    """The fids (sealed) of the register rows of messages received before `before` in the
    loader's environments, once the loader has confirmed them; `fid_hmac` stays (a keyed
    hash: the register's joins across municipalities keep working, nobody can read it)."""
    with_fid = exists().where(
        Notifikasjon.melding_id == Melding.id,
        Hendelse.notifikasjon_id == Notifikasjon.id,
        Hendelse.fid.is_not(None),
    )
    due = (
        await session.execute(
            select(Melding.id, Melding.message_id).where(
                Melding.environment.in_(list(loader_environments)),
                Melding.message_id.in_(_received_before(before)),  # type: ignore[arg-type]
                Melding.message_id.not_in(unconfirmed_messages(loader_environments)),
                with_fid,
            )
        )
    ).all()
    for chunk in chunks(frozenset(melding_id for melding_id, _ in due)):
        notifications = select(Notifikasjon.id).where(Notifikasjon.melding_id.in_(chunk))
        await session.execute(
            update(Hendelse).where(Hendelse.notifikasjon_id.in_(notifications)).values(fid=None)
        )
    return sorted(message_id for _, message_id in due)


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
