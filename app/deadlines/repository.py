"""All SQL of the deadline extensions: set one, list them, read those a message, the coverage
or the feedback needs (as `app.content.calendar.DeadlineExtension`)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.content.calendar import DeadlineExtension
from app.deadlines.models import DeadlineExtensionRow


async def extend(
    session: AsyncSession, kommune_nr: str, year: int, until: datetime.date
) -> DeadlineExtension:
    """Set (or move) the municipality's deadline for `year`. The caller commits."""
    row = await session.get(DeadlineExtensionRow, (kommune_nr, year))
    if row is None:
        session.add(DeadlineExtensionRow(kommune_nr=kommune_nr, year=year, until=until))
    else:
        row.until = until
    await session.flush()
    return DeadlineExtension(kommune_nr, year, until)


async def remove(session: AsyncSession, kommune_nr: str, year: int) -> bool:
    row = await session.get(DeadlineExtensionRow, (kommune_nr, year))
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    return True


async def extensions(
    session: AsyncSession,
    *,
    kommuner: Sequence[str] | None = None,
    year: int | None = None,
) -> tuple[DeadlineExtension, ...]:
    """The extensions, for some municipalities and/or one year, ordered by year and
    municipality."""
    query = select(
        DeadlineExtensionRow.kommune_nr, DeadlineExtensionRow.year, DeadlineExtensionRow.until
    ).order_by(DeadlineExtensionRow.year, DeadlineExtensionRow.kommune_nr)
    if kommuner is not None:
        if not kommuner:
            return ()
        query = query.where(DeadlineExtensionRow.kommune_nr.in_(list(kommuner)))
    if year is not None:
        query = query.where(DeadlineExtensionRow.year == year)
    rows = await session.execute(query)
    return tuple(DeadlineExtension(k, y, u) for k, y, u in rows.all())
