"""The refresher as the app's lifespan runs it: every KPR_FEEDBACK_REFRESH_SECONDS (default
300; 0 turns it off, e.g. when a separate `kpr-mottak feedback refresh` runs from cron)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from app.feedback.figures import Environment
from app.feedback.loading import overview
from app.feedback.refresh import run_loop
from app.models import utcnow
from app.query.reporting import default_year
from app.state import AppState


@dataclass
class Refresher:
    task: asyncio.Task[None] | None

    async def stop(self) -> None:
        if self.task is None:
            return
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def warm(state: AppState) -> None:
    """Build the default year's overview of production and pilot after a refresh, so the
    first reader does not pay for it (the figures are kept per generation)."""
    now = utcnow()
    year = default_year(state.settings, now)
    async with state.sessions() as session:
        for environment in (Environment.PRODUCTION, Environment.PILOT):
            await overview(session, state.settings, year=year, environment=environment, now=now)


def start_refresher(state: AppState) -> Refresher:
    interval = state.settings.feedback_refresh_seconds
    if interval <= 0:
        return Refresher(None)
    task = asyncio.create_task(
        run_loop(
            state.sessions,
            state.settings,
            interval,
            writer=state.sqlite_writer,
            after=lambda: warm(state),
        ),
        name="kpr-feedback-refresher",
    )
    return Refresher(task)
