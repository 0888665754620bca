"""One place that turns a request's year, environment and municipality into published figures,
for the pages (`app.feedback.pages`) and the JSON/CSV API (`app.api.feedback`)."""

from __future__ import annotations

import datetime

from fastapi import HTTPException
from sqlalchemy.ext.asyncio import AsyncSession

from app.feedback import loading
from app.feedback import repository as repo
from app.feedback.figures import Environment, KommuneFeedback, Overview
from app.feedback.http import check_kommune
from app.kommuner.repository import kommuner_of
from app.platform.settings import Settings


async def load_overview(
    session: AsyncSession,
    settings: Settings,
    *,
    year: int,
    environment: Environment,
    now: datetime.datetime,
    gen: str,
) -> Overview:
    return await loading.overview(
        session, settings, year=year, environment=environment, now=now, gen=gen
    )


async def load_kommune(
    session: AsyncSession,
    settings: Settings,
    *,
    kommune_nr: str,
    year: int,
    environment: Environment,
    now: datetime.datetime,
    gen: str,
) -> KommuneFeedback:
    """404 for a number that is neither in the year's list nor has figures that year."""
    check_kommune(kommune_nr)
    names = {k.kommune_nr: k.name for k in await kommuner_of(session, year)}
    name = names.get(kommune_nr)
    if name is None:
        if not await repo.has_figures(session, environment.value, year, kommune_nr):
            raise HTTPException(404, f"kommune {kommune_nr} is not in the list of {year}")
        name = f"Kommune {kommune_nr}"
    return await loading.kommune_feedback(
        session,
        settings,
        kommune_nr=kommune_nr,
        name=name,
        year=year,
        environment=environment,
        now=now,
        gen=gen,
    )
