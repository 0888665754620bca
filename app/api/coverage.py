"""GET /api/v1/coverage: every municipality of a year (SSB's list) and what KPR has received
from it in one environment: the pilot's purpose is that each municipality knows in good time
that its systems are set up right."""

from __future__ import annotations

import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import Operator
from app.api.messages import Environment
from app.api.problems import PROBLEM_RESPONSES
from app.content.calendar import extended, local_date
from app.deadlines import repository as deadline_repo
from app.http_deps import DbSession, app_state
from app.kommuner.repository import kommuner_of
from app.models import utcnow
from app.platform.logs import get_logger
from app.platform.settings import Settings
from app.query import coverage as repo
from app.query.renumbered import fold_renumbered
from app.query.reporting import default_year, received_window, year_entry
from app.query.totals import is_current, windows_for

log = get_logger(__name__)

router = APIRouter(prefix="/api/v1", tags=["coverage"], responses=PROBLEM_RESPONSES)


class KommuneCoverage(BaseModel):
    kommune_nr: str
    name: str
    readable: bool = Field(description="KPR received a readable message (AppRec status 1 or 3)")
    messages: int
    first_readable_at: datetime.datetime | None
    last_readable_at: datetime.datetime | None
    best_apprec_status: str | None = Field(description="1 before 3 before 2")
    notifications_accepted: int
    open_errors: int
    on_time: bool | None = Field(
        description="first readable message by the deadline; null while it has not passed"
    )


class Coverage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "year": 2018,
                    "environment": "pilot",
                    "deadline": "2019-01-15",
                    "correction_deadline": "2019-03-21",
                    "total": 422,
                    "delivered": 1,
                    "kommuner": [
                        {
                            "kommune_nr": "0301",
                            "name": "Oslo",
                            "readable": True,
                            "messages": 2,
                            "first_readable_at": "2018-11-20T11:00:00Z",
                            "last_readable_at": "2018-11-21T09:30:00Z",
                            "best_apprec_status": "1",
                            "notifications_accepted": 120,
                            "open_errors": 3,
                            "on_time": True,
                        }
                    ],
                }
            ]
        }
    )

    year: int
    environment: str
    deadline: datetime.date
    correction_deadline: datetime.date
    total: int
    delivered: int
    kommuner: list[KommuneCoverage]


async def build_coverage(
    session: AsyncSession,
    settings: Settings,
    *,
    year: int,
    environment: str,
    now: datetime.datetime,
) -> Coverage:
    entry = year_entry(settings, year)
    windows = windows_for(settings.reporting_calendar)
    if await is_current(session, windows):
        received = await repo.from_totals(session, environment, year)
    else:  # another calendar setting than the totals were built for: slow but right
        log.warning("coverage.totals_stale", hint="kpr-mottak db rebuild-totals")
        received = await repo.from_rows(session, environment, *received_window(entry))
    listed = await kommuner_of(session, year)
    # a message under a number renumbered one to one counts for the year's number
    received = fold_renumbered(received, {k.kommune_nr for k in listed})
    delivered, accepted, errors = received.deliveries, received.accepted, received.open_errors
    # a municipality's granted deadline (`kpr-mottak calendar extend`) is its own
    granted = await deadline_repo.extensions(session, year=year)
    rows: list[KommuneCoverage] = []
    for k in listed:
        d = delivered.get(k.kommune_nr)
        first = d.first_readable_at if d else None
        deadline = extended(entry, k.kommune_nr, granted).deadline
        if first is not None:
            on_time: bool | None = local_date(first) <= deadline
        else:
            on_time = False if local_date(now) > deadline else None
        rows.append(
            KommuneCoverage(
                kommune_nr=k.kommune_nr,
                name=k.name,
                readable=first is not None,
                messages=d.messages if d else 0,
                first_readable_at=first,
                last_readable_at=d.last_readable_at if d else None,
                best_apprec_status=d.best_apprec_status if d else None,
                notifications_accepted=accepted.get(k.kommune_nr, 0),
                open_errors=errors.get(k.kommune_nr, 0),
                on_time=on_time,
            )
        )
    return Coverage(
        year=year,
        environment=environment,
        deadline=entry.deadline,
        correction_deadline=entry.correction_deadline,
        total=len(rows),
        delivered=sum(1 for r in rows if r.readable),
        kommuner=rows,
    )


@router.get("/coverage", response_model=Coverage, summary="Who has reported (operators)")
async def get_coverage(
    request: Request,
    session: DbSession,
    _who: Operator,
    year: Annotated[int | None, Query(ge=2000, le=2100, description="default: now")] = None,
    environment: Environment = Environment.PILOT,
) -> Response:
    """Every municipality of the year with: readable message received, first and last, best
    status, notifications accepted, open errors, on time against the deadline."""
    settings = app_state(request).settings
    now = utcnow()
    result = await build_coverage(
        session,
        settings,
        year=year or default_year(settings, now),
        environment=environment.value,
        now=now,
    )
    # serialized once (the model was validated as it was built)
    return Response(result.model_dump_json(), media_type="application/json")
