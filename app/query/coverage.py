"""All SQL of coverage: per municipality, what KPR has received in one environment and
reporting-year window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Finding, IplosNotification, Message, Receipt
from app.query import totals
from app.query.feilliste import failing_in
from app.query.totals import RANK, READABLE, STATUS_OF_RANK


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    kommune_nr: str
    messages: int
    readable: int
    first_readable_at: datetime | None
    last_readable_at: datetime | None
    best_apprec_status: str | None


async def deliveries(
    session: AsyncSession, environment: str, received_from: datetime, received_to: datetime
) -> dict[str, Delivery]:
    """Per municipality with any message in the window: counts, first/last readable, best
    AppRec status (1 before 3 before 2)."""
    m, r = Message, Receipt
    readable = r.apprec_status.in_(READABLE)
    rank = case(*((r.apprec_status == status, n) for status, n in RANK.items()))
    rows = await session.execute(
        select(
            m.kommune_nr,
            func.count(m.id),
            func.count(case((readable, 1))),
            func.min(case((readable, m.received_at))),
            func.max(case((readable, m.received_at))),
            func.min(rank),
        )
        .outerjoin(r, r.message_id == m.id)
        .where(
            m.environment == environment,
            m.kommune_nr.is_not(None),
            m.received_at >= received_from,
            m.received_at < received_to,
        )
        .group_by(m.kommune_nr)
    )
    out: dict[str, Delivery] = {}
    for k, total, ok, first, last, rank_min in rows.all():
        first_at = _aware(first)
        last_at = _aware(last)
        out[k] = Delivery(
            kommune_nr=k,
            messages=int(total),
            readable=int(ok),
            first_readable_at=first_at,
            last_readable_at=last_at,
            best_apprec_status=STATUS_OF_RANK.get(rank_min) if rank_min is not None else None,
        )
    return out


def _aware(value: datetime | str | None) -> datetime | None:
    """MIN/MAX over a CASE loses the column type on SQLite (a string comes back)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def accepted_counts(
    session: AsyncSession, environment: str, received_from: datetime, received_to: datetime
) -> dict[str, int]:
    n, m = IplosNotification, Message
    rows = await session.execute(
        select(n.kommune_nr, func.count(n.id))
        .join(m, m.id == n.message_id)
        .where(
            n.environment == environment,
            m.received_at >= received_from,
            m.received_at < received_to,
        )
        .group_by(n.kommune_nr)
    )
    return {k: int(c) for k, c in rows.all()}


async def open_error_counts(
    session: AsyncSession, environment: str, received_from: datetime, received_to: datetime
) -> dict[str, int]:
    f, m = Finding, Message
    rows = await session.execute(
        select(f.kommune_nr, func.count(f.id))
        .join(m, m.id == f.message_id)
        .where(
            *failing_in(),
            f.kommune_nr.is_not(None),
            m.environment == environment,
            m.received_at >= received_from,
            m.received_at < received_to,
            f.corrected_by.is_(None),
        )
        .group_by(f.kommune_nr)
    )
    return {k: int(c) for k, c in rows.all() if k is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """Per municipality: deliveries, accepted notifications and open errors."""

    deliveries: dict[str, Delivery]
    accepted: dict[str, int]
    open_errors: dict[str, int]


async def from_totals(session: AsyncSession, environment: str, year: int) -> Received:
    """The running totals (app/query/totals.py): 422 rows, whatever the history's size."""
    rows = await totals.coverage_totals(session, environment, year)
    return Received(
        deliveries={
            k: Delivery(
                kommune_nr=k,
                messages=t.messages,
                readable=t.readable,
                first_readable_at=t.first_readable_at,
                last_readable_at=t.last_readable_at,
                best_apprec_status=STATUS_OF_RANK.get(t.best_rank or 0),
            )
            for k, t in rows.items()
        },
        # only the municipalities with some, as the rows' counts give them
        accepted={k: t.accepted for k, t in rows.items() if t.accepted},
        open_errors={
            k: t.failing - t.corrected for k, t in rows.items() if t.failing > t.corrected
        },
    )


async def from_rows(
    session: AsyncSession, environment: str, received_from: datetime, received_to: datetime
) -> Received:
    """The same figures read from the stored rows (while the totals are stale)."""
    return Received(
        deliveries=await deliveries(session, environment, received_from, received_to),
        accepted=await accepted_counts(session, environment, received_from, received_to),
        open_errors=await open_error_counts(session, environment, received_from, received_to),
    )
