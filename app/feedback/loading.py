"""The feedback's figures read from the aggregate tables (never from the history) and assembled,
cached per generation: the aggregates change only when a refresh runs.
"""

from __future__ import annotations

import asyncio
import datetime
from collections import OrderedDict

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.content.calendar import DeadlineExtension, extended, local_date
from app.deadlines import repository as deadline_repo
from app.feedback import disclosure
from app.feedback import repository as repo
from app.feedback.assembly import (
    KommuneInput,
    OverviewInput,
    assemble_kommune,
    assemble_overview,
    kommune_parts,
    overview_parts,
)
from app.feedback.figures import Environment, KommuneFeedback, Overview
from app.feedback.refresh import generation
from app.kommuner.repository import kommuner_of
from app.platform.settings import Settings
from app.query.reporting import year_entry

# --- a small cache per generation: the aggregates change only when a refresh runs ----------

_CACHE: OrderedDict[tuple[object, ...], BaseModel] = OrderedDict()
_CACHE_SIZE = 256


def _cached(key: tuple[object, ...]) -> BaseModel | None:
    found = _CACHE.get(key)
    if found is not None:
        _CACHE.move_to_end(key)
    return found


def _remember(key: tuple[object, ...], value: BaseModel) -> None:
    _CACHE[key] = value
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)


async def load_overview(
    session: AsyncSession,
    settings: Settings,
    *,
    year: int,
    environment: Environment,
    now: datetime.datetime,
    gen: str,
    granted: tuple[DeadlineExtension, ...],
) -> OverviewInput:
    kommuner = await kommuner_of(session, year)
    pilot: int | None = None
    if environment is Environment.PRODUCTION:
        listed = [k.kommune_nr for k in kommuner]
        pilot = await repo.delivered_count(session, Environment.PILOT.value, year, listed)
    return OverviewInput(
        year=year,
        environment=environment,
        entry=year_entry(settings, year),
        now=now,
        gen=gen,
        granted=granted,
        kommuner=kommuner,
        heads=await repo.heads(session, environment.value, year),
        counts=await repo.counts_by_kommune(
            session, environment.value, year, disclosure.MESSAGE_KINDS
        ),
        refreshed_at=await repo.refreshed_at(session),
        pilot_delivered=pilot,
    )


async def overview(
    session: AsyncSession,
    settings: Settings,
    *,
    year: int,
    environment: Environment,
    now: datetime.datetime,
    gen: str | None = None,
) -> Overview:
    """Every municipality of the year's list, with its published figures."""
    gen = await generation(session) if gen is None else gen
    # a deadline granted a municipality changes its timeliness at once (not at a refresh)
    granted = await deadline_repo.extensions(session, year=year)
    key = ("overview", environment.value, year, gen, local_date(now), granted)
    found = _cached(key)
    if isinstance(found, Overview):
        return found
    data = await load_overview(
        session, settings, year=year, environment=environment, now=now, gen=gen, granted=granted
    )
    # the decisions are linear programs: made in a worker thread, not on the event loop
    parts = await asyncio.to_thread(overview_parts, data)
    result = assemble_overview(data, parts)
    _remember(key, result)
    return result


async def load_kommune(
    session: AsyncSession,
    settings: Settings,
    *,
    kommune_nr: str,
    name: str,
    year: int,
    environment: Environment,
    now: datetime.datetime,
    gen: str,
    granted: tuple[DeadlineExtension, ...],
) -> KommuneInput:
    return KommuneInput(
        kommune_nr=kommune_nr,
        name=name,
        year=year,
        environment=environment,
        entry=extended(year_entry(settings, year), kommune_nr, granted),
        now=now,
        gen=gen,
        head=await repo.head(session, environment.value, year, kommune_nr),
        counts=await repo.kommune_counts(session, environment.value, year, kommune_nr),
        medians=await repo.medians(session, environment.value, year),
        refreshed_at=await repo.refreshed_at(session),
    )


async def kommune_feedback(
    session: AsyncSession,
    settings: Settings,
    *,
    kommune_nr: str,
    name: str,
    year: int,
    environment: Environment,
    now: datetime.datetime,
    gen: str | None = None,
) -> KommuneFeedback:
    gen = await generation(session) if gen is None else gen
    granted = await deadline_repo.extensions(session, kommuner=[kommune_nr], year=year)
    key = ("kommune", environment.value, year, kommune_nr, gen, local_date(now), granted)
    found = _cached(key)
    if isinstance(found, KommuneFeedback):
        return found
    data = await load_kommune(
        session,
        settings,
        kommune_nr=kommune_nr,
        name=name,
        year=year,
        environment=environment,
        now=now,
        gen=gen,
        granted=granted,
    )
    messages, users = await asyncio.to_thread(kommune_parts, data)
    result = assemble_kommune(data, messages, users)
    _remember(key, result)
    return result
