"""What the pages, the JSON and the CSV share: the year and environment asked for, the list of
years to choose from, conditional GET (ETag) and caching headers."""

from __future__ import annotations

import datetime
import hashlib
import re
from collections import OrderedDict

from fastapi import HTTPException, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.feedback import repository as repo
from app.feedback.figures import Environment
from app.platform.settings import Settings
from app.query.reporting import default_year

CACHE_CONTROL = "public, max-age=60"
KOMMUNE_NR = re.compile(r"[0-9]{4}")
MIN_YEAR, MAX_YEAR = 2000, 2100


def check_year(year: int | None, settings: Settings, now: datetime.datetime) -> int:
    chosen = year if year is not None else default_year(settings, now)
    if not MIN_YEAR <= chosen <= MAX_YEAR:
        raise HTTPException(422, "year out of range")
    return chosen


def check_kommune(kommune_nr: str) -> str:
    if not KOMMUNE_NR.fullmatch(kommune_nr):
        raise HTTPException(404, "not a kommunenummer")
    return kommune_nr


async def years(session: AsyncSession, current: int, default: int) -> list[int]:
    found = await repo.years_with_figures(session)
    found |= {current, default}
    return sorted(found, reverse=True)


def etag_for(request: Request, gen: str, now: datetime.datetime) -> str:
    """Weak ETag: the aggregates' generation, the address asked for and the day (timeliness
    of "not delivered yet" moves with the date)."""
    key = f"{gen}|{request.url.path}|{request.url.query}|{now.date().isoformat()}"
    return 'W/"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


def not_modified(request: Request, etag: str) -> Response | None:
    asked = request.headers.get("if-none-match", "")
    if etag in {t.strip() for t in asked.split(",")}:
        return Response(status_code=304, headers=cache_headers(etag))
    return None


def cache_headers(etag: str) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": CACHE_CONTROL}


def environment_of(value: str | None) -> Environment:
    try:
        return Environment(value or Environment.PRODUCTION.value)
    except ValueError:
        raise HTTPException(422, "environment must be production, pilot or test") from None


# Answers by ETag (generation, address with its query, day): each is built once per refresh.
_BODIES: OrderedDict[str, tuple[bytes, str, dict[str, str]]] = OrderedDict()
_BODIES_SIZE = 256


def remember(
    etag: str, body: bytes, media_type: str, extra: dict[str, str] | None = None
) -> Response:
    _BODIES[etag] = (body, media_type, extra or {})
    while len(_BODIES) > _BODIES_SIZE:
        _BODIES.popitem(last=False)
    return Response(body, media_type=media_type, headers={**cache_headers(etag), **(extra or {})})


def recall(request: Request, etag: str) -> Response | None:
    """304 when the client has it, the stored answer when this process built it already."""
    if (unchanged := not_modified(request, etag)) is not None:
        return unchanged
    found = _BODIES.get(etag)
    if found is None:
        return None
    _BODIES.move_to_end(etag)
    body, media_type, extra = found
    return Response(body, media_type=media_type, headers={**cache_headers(etag), **extra})


def forget_all() -> None:
    """Empty the stored answers (the benchmark's cold runs)."""
    _BODIES.clear()
