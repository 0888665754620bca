"""All SQL a feedback refresh reads from the stored history (messages, receipts,
notifications, events, findings): set-based counts grouped by municipality, returned as plain
rows. Only counts leave this module; the folding into figures is `app.feedback.refresh`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Finding, IplosEvent, IplosNotification, Message, Receipt


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """The messages of one environment received in [start, end), of `kommuner` (None:
    every municipality)."""

    environment: str
    start: datetime
    end: datetime
    kommuner: Sequence[str] | None

    def where(self, kommune: Any) -> Any:
        parts = [
            Message.environment == self.environment,
            Message.received_at >= self.start,
            Message.received_at < self.end,
            kommune.is_not(None),
        ]
        if self.kommuner is not None:
            parts.append(kommune.in_(list(self.kommuner)))
        return and_(*parts)

    def stored(self) -> Any:
        """The notifications stored from the window's messages."""
        n = IplosNotification
        return and_(n.environment == self.environment, self.where(n.kommune_nr))


async def _all(session: AsyncSession, statement: Any) -> list[Any]:
    """The rows of a statement, untyped (grouped rows of mixed column types)."""
    return list((await session.execute(statement)).all())


async def messages(session: AsyncSession, w: Window) -> list[Any]:
    """(kommune, received_at, AppRec status, notification count) of each message."""
    m, r = Message, Receipt
    return await _all(
        session,
        select(m.kommune_nr, m.received_at, r.apprec_status, m.notification_count)
        .outerjoin(r, r.message_id == m.id)
        .where(w.where(m.kommune_nr)),
    )


async def notifications(session: AsyncSession, w: Window) -> list[Any]:
    """(kommune, stored, with lopenr, corrections (M/C), corrections with a ref)."""
    m, n = Message, IplosNotification
    corrections = n.status.in_(("M", "C"))
    return await _all(
        session,
        select(
            n.kommune_nr,
            func.count(n.id),
            func.count(n.lopenr),
            func.count(case((corrections, 1))),
            func.count(case((and_(corrections, n.ref.is_not(None)), 1))),
        )
        .join(m, m.id == n.message_id)
        .where(w.stored())
        .group_by(n.kommune_nr),
    )


async def events(session: AsyncSession, w: Window) -> list[Any]:
    """(kommune, events, with a date, with a tjeneste id, with an org nr, changes of
    provider, changes with an org nr)."""
    m, n, e = Message, IplosNotification, IplosEvent
    changed = e.kind == "TjenesteutforerEndret"
    return await _all(
        session,
        select(
            n.kommune_nr,
            func.count(e.id),
            func.count(e.hendelse_dato),
            func.count(case((e.tjeneste_id != "", 1))),
            func.count(e.tjeneste_org_nr),
            func.count(case((changed, 1))),
            func.count(case((and_(changed, e.tjeneste_org_nr.is_not(None)), 1))),
        )
        .join(m, m.id == n.message_id)
        .join(e, e.notification_id == n.id)
        .where(w.stored())
        .group_by(n.kommune_nr),
    )


async def rule_hits(session: AsyncSession, w: Window) -> list[Any]:
    """(kommune, rule, consequence, about the whole message, distinct notifications or
    messages it concerns)."""
    m, f = Message, Finding
    per_finding = (
        select(m.kommune_nr.label("k"), f.rule_id, f.consequence, f.message_id, f.notification_guid)
        .distinct()
        .join(m, m.id == f.message_id)
        .where(w.where(m.kommune_nr))
        .subquery()
    )
    message_level = per_finding.c.notification_guid.is_(None)
    return await _all(
        session,
        select(
            per_finding.c.k,
            per_finding.c.rule_id,
            per_finding.c.consequence,
            message_level,
            func.count(),
        ).group_by(
            per_finding.c.k, per_finding.c.rule_id, per_finding.c.consequence, message_level
        ),
    )


async def dropped(session: AsyncSession, w: Window) -> list[Any]:
    """(kommune, notifications not taken in: distinct ones with a drop_notification)."""
    m, f = Message, Finding
    found = (
        select(m.kommune_nr.label("k"), f.message_id, f.notification_guid)
        .distinct()
        .join(m, m.id == f.message_id)
        .where(
            w.where(m.kommune_nr),
            f.consequence == "drop_notification",
            f.notification_guid.is_not(None),
        )
        .subquery()
    )
    return await _all(session, select(found.c.k, func.count()).group_by(found.c.k))


async def top_message_id(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(Message.id), 0))) or 0)


async def spans(session: AsyncSession, condition: Any) -> list[Any]:
    """(environment, kommune, first and last received_at) of the messages matching
    `condition`, one row per environment and municipality."""
    m = Message
    return await _all(
        session,
        select(m.environment, m.kommune_nr, func.min(m.received_at), func.max(m.received_at))
        .where(condition)
        .group_by(m.environment, m.kommune_nr),
    )


def since_conditions(
    top: int, watermark: int, refreshed_at: datetime | None, lookback: Any, full: bool
) -> list[Any]:
    """Conditions of the messages a refresh must look at: above the watermark (primary key)
    or received within `lookback` before the last refresh (received_at index); two queries,
    so each uses its index. `full`: every message up to `top`."""
    m = Message
    base = [m.kommune_nr.is_not(None), m.environment.is_not(None), m.id <= top]
    if full:
        return [and_(*base)]
    conditions = [and_(*base, m.id > watermark)]
    if refreshed_at is not None:
        conditions.append(and_(*base, m.received_at >= refreshed_at - lookback))
    return conditions
