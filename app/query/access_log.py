"""All SQL of the access log: who read which personal data. Rows are only ever inserted
(app.models refuses changes in the session; PostgreSQL also by a trigger)."""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AccessLog, utcnow


@dataclass(frozen=True, slots=True, kw_only=True)
class Access:
    """What one API response disclosed, and to whom."""

    token_id: int | None  # None for the command line on the server
    actor: str  # the token's name (or cli:<user>)
    role: str  # operator | municipality:<kommunenr>
    action: str  # e.g. messages.raw, feilliste.read
    resource: str  # the path read
    kommune_nr: str | None = None
    message_ids: Sequence[int] = ()
    request_id: str | None = None
    remote_addr: str | None = None


def cli_access(action: str, resource: str, kommune_nr: str | None = None) -> Access:
    """A read or change on the server's command line: the local user, as an operator."""
    return Access(
        token_id=None,
        actor=f"cli:{getpass.getuser()}",
        role="operator",
        action=action,
        resource=resource,
        kommune_nr=kommune_nr,
    )


def record_access(session: AsyncSession, access: Access, *, at: datetime | None = None) -> None:
    """Add the access-log rows for one read: one per message named, or one without. The
    caller commits them in the transaction that read the data."""
    when = at or utcnow()
    ids: Sequence[int | None] = list(dict.fromkeys(access.message_ids)) or [None]
    for message_id in ids:
        session.add(
            AccessLog(
                at=when,
                token_id=access.token_id,
                actor=access.actor[:100],
                role=access.role[:40],
                action=access.action[:60],
                resource=access.resource[:300],
                message_id=message_id,
                kommune_nr=access.kommune_nr,
                request_id=access.request_id,
                remote_addr=access.remote_addr,
            )
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessFilter:
    actor: str | None = None
    kommune_nr: str | None = None
    message_id: int | None = None
    action: str | None = None
    at_from: datetime | None = None
    at_to: datetime | None = None


async def list_access(
    session: AsyncSession, where: AccessFilter, *, before_id: int | None, limit: int
) -> list[AccessLog]:
    """Newest first; `before_id` is the cursor (the last id of the previous page)."""
    a = AccessLog
    query = select(a).order_by(a.id.desc()).limit(limit)
    if where.actor is not None:
        query = query.where(a.actor == where.actor)
    if where.kommune_nr is not None:
        query = query.where(a.kommune_nr == where.kommune_nr)
    if where.message_id is not None:
        query = query.where(a.message_id == where.message_id)
    if where.action is not None:
        query = query.where(a.action == where.action)
    if where.at_from is not None:
        query = query.where(a.at >= where.at_from)
    if where.at_to is not None:
        query = query.where(a.at < where.at_to)
    if before_id is not None:
        query = query.where(a.id < before_id)
    return list(await session.scalars(query))
