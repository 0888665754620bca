"""All SQL on the feedback's aggregate tables (`app.feedback.tables`): what the pages, the JSON
and the CSV read, and what a refresh replaces. Rows leave as plain data (`Head`, count maps),
never as ORM objects, so the figures are assembled without a session (`app.feedback.figures`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.feedback.tables import FeedbackCount, FeedbackKommune, FeedbackMedian, FeedbackState

Counts = dict[tuple[str, str], tuple[int, int]]  # (kind, key) -> (value, total)
Medians = dict[tuple[str, str], tuple[float, int]]  # (kind, key) -> (median, municipalities)

_T = TypeVar("_T")
_LOCK_KEY = 7_141_414  # pg advisory lock id of the feedback refresher


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    """A municipality's headline figures of one environment and reporting year."""

    kommune_nr: str
    messages: int
    readable: int
    first_readable_at: datetime | None
    last_readable_at: datetime | None
    accepted: int
    failed: int
    top_rule: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CountRow:
    kommune_nr: str
    kind: str
    key: str
    value: int
    total: int


def chunks(values: Sequence[_T]) -> list[Sequence[_T]]:
    """Slices of 500: an IN list or a batch of inserts the databases take."""
    return [values[i : i + 500] for i in range(0, len(values), 500)]


def _head(h: FeedbackKommune) -> Head:
    return Head(
        kommune_nr=h.kommune_nr,
        messages=int(h.messages),
        readable=int(h.readable),
        first_readable_at=h.first_readable_at,
        last_readable_at=h.last_readable_at,
        accepted=int(h.accepted),
        failed=int(h.failed),
        top_rule=h.top_rule,
    )


# --- read by the figures ---------------------------------------------------------------------


async def heads(session: AsyncSession, environment: str, year: int) -> dict[str, Head]:
    found = await session.scalars(
        select(FeedbackKommune).where(
            FeedbackKommune.environment == environment, FeedbackKommune.year == year
        )
    )
    return {h.kommune_nr: _head(h) for h in found.all()}


async def head(session: AsyncSession, environment: str, year: int, kommune_nr: str) -> Head | None:
    found = await session.get(FeedbackKommune, (environment, year, kommune_nr))
    return _head(found) if found is not None else None


async def has_figures(session: AsyncSession, environment: str, year: int, kommune_nr: str) -> bool:
    return await session.get(FeedbackKommune, (environment, year, kommune_nr)) is not None


async def counts_by_kommune(
    session: AsyncSession, environment: str, year: int, kinds: Collection[str]
) -> dict[str, Counts]:
    """The counts of `kinds` of every municipality."""
    rows = await session.execute(
        select(
            FeedbackCount.kommune_nr,
            FeedbackCount.kind,
            FeedbackCount.key,
            FeedbackCount.value,
            FeedbackCount.total,
        ).where(
            FeedbackCount.environment == environment,
            FeedbackCount.year == year,
            FeedbackCount.kind.in_(list(kinds)),
        )
    )
    out: dict[str, Counts] = {}
    for k, kind, key, value, total in rows.all():
        out.setdefault(k, {})[(kind, key)] = (int(value), int(total))
    return out


async def kommune_counts(
    session: AsyncSession, environment: str, year: int, kommune_nr: str
) -> Counts:
    found = await session.scalars(
        select(FeedbackCount).where(
            FeedbackCount.environment == environment,
            FeedbackCount.year == year,
            FeedbackCount.kommune_nr == kommune_nr,
        )
    )
    return {(c.kind, c.key): (c.value, c.total) for c in found.all()}


async def medians(session: AsyncSession, environment: str, year: int) -> Medians:
    rows = await session.execute(
        select(
            FeedbackMedian.kind, FeedbackMedian.key, FeedbackMedian.median, FeedbackMedian.kommuner
        ).where(FeedbackMedian.environment == environment, FeedbackMedian.year == year)
    )
    return {(k, key): (float(m), int(n)) for k, key, m, n in rows.all()}


async def refreshed_at(session: AsyncSession) -> datetime | None:
    return await session.scalar(select(FeedbackState.refreshed_at))


async def delivered_count(
    session: AsyncSession, environment: str, year: int, kommuner: Collection[str]
) -> int:
    """How many of `kommuner` delivered a readable message in `environment`."""
    found = await session.scalar(
        select(func.count()).where(
            FeedbackKommune.environment == environment,
            FeedbackKommune.year == year,
            FeedbackKommune.readable > 0,
            FeedbackKommune.kommune_nr.in_(list(kommuner)),
        )
    )
    return int(found or 0)


async def years_with_figures(session: AsyncSession) -> set[int]:
    return set((await session.scalars(select(FeedbackKommune.year).distinct())).all())


async def generation_state(session: AsyncSession, name: str) -> tuple[int, Any] | None:
    """(generation, refreshed_at as stored) of the refresher's state, None before any."""
    found = (
        await session.execute(
            select(FeedbackState.generation, FeedbackState.refreshed_at).where(
                FeedbackState.name == name
            )
        )
    ).one_or_none()
    return (int(found[0]), found[1]) if found is not None else None


# --- written by a refresh --------------------------------------------------------------------


async def lock(session: AsyncSession) -> bool:
    """One refresher at a time: a transaction-scoped advisory lock on PostgreSQL (SQLite runs
    under the app's writer lock)."""
    if (await session.connection()).dialect.name != "postgresql":
        return True
    got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    return bool(got)


async def state(session: AsyncSession, name: str) -> FeedbackState:
    """The refresher's state row, created at the first refresh."""
    found = await session.get(FeedbackState, name)
    if found is None:
        found = FeedbackState(name=name, watermark=0, generation=0)
        session.add(found)
        await session.flush()
    return found


async def clear_all(session: AsyncSession) -> None:
    for table in (FeedbackCount, FeedbackKommune, FeedbackMedian):
        await session.execute(delete(table))


async def clear_kommuner(
    session: AsyncSession, environment: str, year: int, kommuner: Sequence[str]
) -> None:
    for chunk in chunks(list(kommuner)):
        for table in (FeedbackCount, FeedbackKommune):
            await session.execute(
                delete(table).where(
                    table.environment == environment,
                    table.year == year,
                    table.kommune_nr.in_(chunk),
                )
            )


async def insert_figures(
    session: AsyncSession, heads: list[dict[str, Any]], counts: list[dict[str, Any]]
) -> None:
    for batch in chunks(heads):
        await session.execute(insert(FeedbackKommune), list(batch))
    for part in chunks(counts):
        await session.execute(insert(FeedbackCount), list(part))
    await session.flush()


async def kommune_years(
    session: AsyncSession, environment: str, kommuner: Sequence[str]
) -> set[tuple[str, int]]:
    """(municipality, year) of every year with figures of `kommuner`."""
    out: set[tuple[str, int]] = set()
    for chunk in chunks(sorted(kommuner)):
        rows = await session.execute(
            select(FeedbackKommune.kommune_nr, FeedbackKommune.year).where(
                FeedbackKommune.environment == environment,
                FeedbackKommune.kommune_nr.in_(chunk),
            )
        )
        out |= {(str(k), int(y)) for k, y in rows.all()}
    return out


async def replace_counts_of_kinds(
    session: AsyncSession,
    environment: str,
    year: int,
    kommuner: Sequence[str],
    kinds: Collection[str],
    rows: list[dict[str, Any]],
) -> None:
    """Delete the counts of `kinds` of `kommuner` (one chunk at most) and insert `rows`."""
    await session.execute(
        delete(FeedbackCount).where(
            FeedbackCount.environment == environment,
            FeedbackCount.year == year,
            FeedbackCount.kommune_nr.in_(list(kommuner)),
            FeedbackCount.kind.in_(list(kinds)),
        )
    )
    if rows:
        await session.execute(insert(FeedbackCount), rows)


async def year_figures(
    session: AsyncSession, environment: str, year: int
) -> tuple[list[Head], list[CountRow]]:
    """Every municipality's heads and counts of one year: the medians' input."""
    found_heads = await heads(session, environment, year)
    found = await session.scalars(
        select(FeedbackCount).where(
            FeedbackCount.environment == environment, FeedbackCount.year == year
        )
    )
    rows = [
        CountRow(
            kommune_nr=c.kommune_nr,
            kind=c.kind,
            key=c.key,
            value=int(c.value),
            total=int(c.total),
        )
        for c in found.all()
    ]
    return list(found_heads.values()), rows


async def replace_medians(
    session: AsyncSession, environment: str, year: int, found: Medians
) -> None:
    await session.execute(
        delete(FeedbackMedian).where(
            FeedbackMedian.environment == environment, FeedbackMedian.year == year
        )
    )
    rows = [
        {
            "environment": environment,
            "year": year,
            "kind": kind,
            "key": key,
            "median": median,
            "kommuner": n,
        }
        for (kind, key), (median, n) in found.items()
    ]
    if rows:
        await session.execute(insert(FeedbackMedian), rows)
