"""All SQL of the municipality lists: a year's list, and replacing it from an import."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kommuner.lists import shipped_list
from app.kommuner.ssb import Kommune
from app.kommuner.years import KommuneYears
from app.models import Kommune as KommuneRow


async def replace_year(session: AsyncSession, year: int, kommuner: Sequence[Kommune]) -> int:
    """The year's list becomes `kommuner` (an import replaces, never merges)."""
    await session.execute(delete(KommuneRow).where(KommuneRow.year == year))
    session.add_all(KommuneRow(year=year, kommune_nr=k.kommune_nr, name=k.name) for k in kommuner)
    await session.flush()
    return len(kommuner)


async def kommuner_of(session: AsyncSession, year: int) -> list[Kommune]:
    """The imported list of `year`, else the shipped one in force that year."""
    rows = (
        await session.execute(
            select(KommuneRow.kommune_nr, KommuneRow.name)
            .where(KommuneRow.year == year)
            .order_by(KommuneRow.kommune_nr)
        )
    ).all()
    if rows:
        return [Kommune(kommune_nr=k, name=n) for k, n in rows]
    return list(shipped_list(year))


async def imported_years(session: AsyncSession) -> KommuneYears:
    """The lists an operator imported, per year (most installations have none: the shipped
    lists serve)."""
    rows = (await session.execute(select(KommuneRow.year, KommuneRow.kommune_nr))).all()
    years: dict[int, set[str]] = {}
    for year, kommune_nr in rows:
        years.setdefault(year, set()).add(kommune_nr)
    return KommuneYears({y: frozenset(n) for y, n in years.items()})
