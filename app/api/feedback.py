"""GET /api/v1/feedback and /api/v1/feedback/{kommune_nr}: the open feedback's figures as JSON
(or CSV with `format=csv`). Public: aggregates only, suppressed as on the pages."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from app.api.problems import PROBLEM_RESPONSES
from app.feedback.csv_out import kommune_csv, overview_csv
from app.feedback.figures import Environment, KommuneFeedback, Overview, select_rows
from app.feedback.http import check_year, etag_for, recall, remember
from app.feedback.refresh import generation
from app.feedback.service import load_kommune, load_overview
from app.http_deps import DbSession, app_state
from app.models import utcnow

router = APIRouter(prefix="/api/v1", tags=["feedback"], responses=PROBLEM_RESPONSES)

Format = Literal["json", "csv"]
CSV = "text/csv; charset=utf-8"


def _csv(body: str, etag: str, name: str) -> Response:
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    return remember(etag, body.encode(), CSV, disposition)


def _json(model: BaseModel, etag: str) -> Response:
    return remember(etag, model.model_dump_json().encode(), "application/json")


@router.get(
    "/feedback",
    response_model=Overview,
    summary="The open feedback: every municipality of a year (public)",
    responses={200: {"content": {CSV: {}}}},
)
async def get_feedback(
    request: Request,
    session: DbSession,
    year: Annotated[int | None, Query(ge=2000, le=2100, description="default: now")] = None,
    environment: Environment = Environment.PRODUCTION,
    fylke: Annotated[str, Query(max_length=2, description="county: first two digits")] = "",
    q: Annotated[str, Query(max_length=60, description="part of the name or number")] = "",
    format: Format = "json",
) -> Response:
    """Per municipality of SSB's list for the year: readable message received, notifications
    accepted, share with errors, the rule failing most often, on time against the deadline
    and after KOSTRA's publication. Counts from 1 to 4 are "<5" (value null)."""
    settings = app_state(request).settings
    now = utcnow()
    chosen = check_year(year, settings, now)
    gen = await generation(session)
    etag = etag_for(request, gen, now)
    if (cached := recall(request, etag)) is not None:
        return cached
    o = await load_overview(
        session, settings, year=chosen, environment=environment, now=now, gen=gen
    )
    rows = select_rows(o.kommuner, fylke=fylke, q=q, desc=False)
    if format == "csv":
        return _csv(overview_csv(o, rows), etag, f"kpr-tilbakemelding-{chosen}.csv")
    body = o.model_copy(update={"kommuner": rows})
    return _json(body, etag)


@router.get(
    "/feedback/{kommune_nr}",
    response_model=KommuneFeedback,
    summary="The open feedback of one municipality (public)",
    responses={200: {"content": {CSV: {}}}},
)
async def get_feedback_kommune(
    request: Request,
    session: DbSession,
    kommune_nr: str,
    year: Annotated[int | None, Query(ge=2000, le=2100, description="default: now")] = None,
    environment: Environment = Environment.PRODUCTION,
    format: Format = "json",
) -> Response:
    """Users per service type, long-term stays and users at home, completeness per item,
    messages per month and the share failing each rule, each with the national median."""
    settings = app_state(request).settings
    now = utcnow()
    chosen = check_year(year, settings, now)
    gen = await generation(session)
    etag = etag_for(request, gen, now)
    if (cached := recall(request, etag)) is not None:
        return cached
    k = await load_kommune(
        session,
        settings,
        kommune_nr=kommune_nr,
        year=chosen,
        environment=environment,
        now=now,
        gen=gen,
    )
    if format == "csv":
        return _csv(kommune_csv(k), etag, f"kpr-tilbakemelding-{kommune_nr}-{chosen}.csv")
    return _json(k, etag)
