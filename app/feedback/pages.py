"""GET /feedback and /feedback/{kommunenr}: the public pages (HTML, Bokmål). Plain links and
GET forms only, so they work with JavaScript off; inline CSS and SVG, nothing from outside."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated, NamedTuple
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment as Jinja
from jinja2 import FileSystemLoader, select_autoescape
from markupsafe import Markup

from app.feedback import svg
from app.feedback.figures import ENVIRONMENT_TEXT, Environment, KommuneFeedback, select_rows
from app.feedback.http import check_year, environment_of, etag_for, recall, remember, years
from app.feedback.refresh import generation
from app.feedback.service import load_kommune, load_overview
from app.http_deps import DbSession, app_state
from app.models import utcnow
from app.platform.settings import Settings
from app.query.reporting import default_year

router = APIRouter(tags=["feedback"], include_in_schema=False)

_jinja = Jinja(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

COLUMNS = [
    ("kommune_nr", "Nr.", ""),
    ("name", "Kommune", ""),
    ("fylke", "Fylke", "hide-small"),
    ("readable", "Lesbar melding", ""),
    ("messages", "Meldinger", "n"),
    ("accepted", "Notifikasjoner tatt imot", "n"),
    ("error_share", "Andel med feil", "n"),
    ("top_rule", "Hyppigste regel", ""),
    ("timeliness", "Rettidighet", ""),
]
ENVIRONMENTS = [(e.value, ENVIRONMENT_TEXT[e.value]) for e in Environment]


HTML = "text/html; charset=utf-8"


def _html(body: str, etag: str) -> Response:
    return remember(etag, body.encode(), HTML)


def _error(status: int, title: str, text: str) -> HTMLResponse:
    body = _jinja.get_template("error.html").render(title=title, text=text, refreshed_at=None)
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


class _Asked(NamedTuple):
    settings: Settings
    now: datetime.datetime
    year: int
    environment: Environment
    gen: str
    etag: str


async def _asked(
    request: Request, session: DbSession, year: int | None, environment: str | None
) -> _Asked | Response:
    """The year and environment chosen, checked, and the page's ETag; or the answer already:
    an error page for a bad choice, 304 or the stored page when the ETag matches."""
    settings = app_state(request).settings
    now = utcnow()
    try:
        chosen = check_year(year, settings, now)
        env = environment_of(environment)
    except HTTPException:
        return _error(422, "Ugyldig valg", "Velg et år mellom 2000 og 2100 og et gyldig miljø.")
    gen = await generation(session)
    etag = etag_for(request, gen, now)
    if (cached := recall(request, etag)) is not None:
        return cached
    return _Asked(settings, now, chosen, env, gen, etag)


@router.get("/feedback", response_class=HTMLResponse)
async def feedback_page(
    request: Request,
    session: DbSession,
    year: Annotated[int | None, Query()] = None,
    environment: Annotated[str | None, Query()] = None,
    fylke: Annotated[str, Query(max_length=2)] = "",
    q: Annotated[str, Query(max_length=60)] = "",
    sort: Annotated[str, Query(max_length=20)] = "kommune_nr",
    order: Annotated[str, Query(max_length=4)] = "asc",
) -> Response:
    asked = await _asked(request, session, year, environment)
    if isinstance(asked, Response):
        return asked  # a bad choice, or the page the client (or this process) has already
    settings, now, chosen, env, gen, etag = asked
    o = await load_overview(session, settings, year=chosen, environment=env, now=now, gen=gen)
    desc = order == "desc"
    sort = sort if sort in {c[0] for c in COLUMNS} else "kommune_nr"
    rows = select_rows(o.kommuner, fylke=fylke, q=q, sort=sort, desc=desc)
    base = {"year": chosen, "environment": env.value, "fylke": fylke, "q": q}

    def link(**extra: object) -> str:
        params = {k: v for k, v in {**base, **extra}.items() if v not in ("", None)}
        return "/feedback?" + urlencode(params)

    sort_links = {
        key: link(sort=key, order="desc" if key == sort and not desc else "asc")
        for key, _t, _c in COLUMNS
    }
    query = urlencode({"year": chosen, "environment": env.value})
    body = _jinja.get_template("overview.html").render(
        o=o,
        rows=rows,
        env_text=ENVIRONMENT_TEXT[env.value],
        years=await years(session, chosen, default_year(settings, now)),
        environments=ENVIRONMENTS,
        fylke=fylke,
        q=q,
        sort=sort,
        order="desc" if desc else "asc",
        columns=COLUMNS,
        sort_links=sort_links,
        query=query,
        pilot_link="/feedback?" + urlencode({"year": chosen, "environment": "pilot"}),
        csv_link=f"/api/v1/feedback?{urlencode({**base, 'format': 'csv'})}",
        json_link=f"/api/v1/feedback?{query}",
        refreshed_at=o.refreshed_at,
    )
    return _html(body, etag)


def _charts(k: KommuneFeedback) -> dict[str, Markup]:
    return {
        "services_chart": svg.bars(
            "Andel av brukerne per tjenestetype",
            [
                svg.Bar(f"{s.tjeneste_type} {s.name}", s.share.value, s.share.text, s.median.value)
                for s in k.services
            ],
        ),
        "groups_chart": svg.bars(
            "Langtidsopphold og hjemmeboende",
            [svg.Bar(g.label, g.share.value, g.share.text, g.median.value) for g in k.user_groups],
        ),
        "items_chart": svg.bars(
            "Utfylt per opplysning",
            [
                svg.Bar(f"{i.item} ({i.of})", i.filled.value, i.filled.text, i.median.value)
                for i in k.items
            ],
        ),
        "months_chart": svg.timeline(
            "Meldinger per måned",
            [svg.Bar(m.month, m.messages.value, m.messages.text, m.median.value) for m in k.months],
        ),
        "rules_chart": svg.bars(
            "Andel som bryter regelen",
            [svg.Bar(r.rule_id, r.share.value, r.share.text, r.median.value) for r in k.rules],
            maximum=1.0,
        ),
    }


@router.get("/feedback/{kommune_nr}", response_class=HTMLResponse)
async def feedback_kommune_page(
    request: Request,
    session: DbSession,
    kommune_nr: str,
    year: Annotated[int | None, Query()] = None,
    environment: Annotated[str | None, Query()] = None,
) -> Response:
    asked = await _asked(request, session, year, environment)
    if isinstance(asked, Response):
        return asked  # a bad choice, or the page the client (or this process) has already
    settings, now, chosen, env, gen, etag = asked
    try:
        k = await load_kommune(
            session,
            settings,
            kommune_nr=kommune_nr,
            year=chosen,
            environment=env,
            now=now,
            gen=gen,
        )
    except HTTPException:
        return _error(404, "Fant ikke kommunen", f"Ingen kommune med dette nummeret i {chosen}.")
    query = urlencode({"year": chosen, "environment": env.value})
    body = _jinja.get_template("kommune.html").render(
        k=k,
        env_text=ENVIRONMENT_TEXT[env.value],
        back_link=f"/feedback?{query}",
        csv_link=f"/api/v1/feedback/{k.kommune_nr}?{query}&format=csv",
        json_link=f"/api/v1/feedback/{k.kommune_nr}?{query}",
        refreshed_at=k.refreshed_at,
        **_charts(k),
    )
    return _html(body, etag)
