"""GET /api/v1/stats: counts by day, municipality, status and rule over a range (operators).
No personal data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from app.api.deps import Operator
from app.api.messages import Environment
from app.api.problems import PROBLEM_RESPONSES
from app.http_deps import DbSession
from app.query import stats as repo

router = APIRouter(prefix="/api/v1", tags=["stats"], responses=PROBLEM_RESPONSES)
DEFAULT_RANGE = timedelta(days=30)
MAX_RANGE = timedelta(days=800)


class Counts(BaseModel):
    received_from: datetime
    received_to: datetime
    environment: str | None
    by_day: dict[str, int]
    by_kommune: dict[str, int]
    by_status: dict[str, int]
    by_rule: dict[str, int]


@router.get("/stats", response_model=Counts, summary="Counts over a range (operators)")
async def get_stats(
    session: DbSession,
    _who: Operator,
    received_from: Annotated[datetime | None, Query(description="default: 30 days back")] = None,
    received_to: Annotated[datetime | None, Query(description="default: now")] = None,
    environment: Environment | None = None,
) -> Counts:
    """Messages per UTC day, municipality (`-`: none) and status; findings per rule."""
    end = received_to or datetime.now(UTC)
    start = received_from or end - DEFAULT_RANGE
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(422, "received_from/received_to need a time zone (e.g. Z)")
    if not timedelta(0) <= end - start <= MAX_RANGE:
        raise HTTPException(422, "the range must be forwards and at most 800 days")
    env = environment.value if environment else None
    messages = await repo.message_counts(session, start, end, env)
    return Counts(
        received_from=start,
        received_to=end,
        environment=env,
        by_day={c.key: c.count for c in messages.by_day},
        by_kommune={c.key: c.count for c in messages.by_kommune},
        by_status={c.key: c.count for c in messages.by_status},
        by_rule={c.key: c.count for c in await repo.findings_by_rule(session, start, end, env)},
    )
