"""GET /api/v1/access-log: who read which personal data, when, from where (operators)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.api.deps import Operator
from app.api.paging import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, page
from app.api.problems import PROBLEM_RESPONSES
from app.http_deps import DbSession
from app.query.access_log import AccessFilter, list_access

router = APIRouter(prefix="/api/v1", tags=["access-log"], responses=PROBLEM_RESPONSES)


class AccessOut(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    resource: str
    message_id: int | None
    kommune_nr: str | None
    request_id: str | None
    remote_addr: str | None


class AccessPage(BaseModel):
    items: list[AccessOut]
    next_cursor: str | None


@router.get("/access-log", response_model=AccessPage, summary="Reads of personal data")
async def get_access_log(
    session: DbSession,
    _who: Operator,
    actor: Annotated[str | None, Query(max_length=100, description="token name")] = None,
    kommune: Annotated[str | None, Query(pattern=r"^[0-9]{4}$")] = None,
    message_id: Annotated[int | None, Query(ge=1, lt=2**63)] = None,
    action: Annotated[str | None, Query(max_length=60)] = None,
    at_from: datetime | None = None,
    at_to: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> AccessPage:
    """Newest first. The log itself is append-only: nothing here changes it."""
    rows = await list_access(
        session,
        AccessFilter(
            actor=actor,
            kommune_nr=kommune,
            message_id=message_id,
            action=action,
            at_from=at_from,
            at_to=at_to,
        ),
        before_id=decode_cursor(cursor),
        limit=limit + 1,
    )
    items, next_cursor = page(rows, limit, rows[limit - 1].id if len(rows) > limit else None)
    return AccessPage(
        items=[AccessOut.model_validate(r, from_attributes=True) for r in items],
        next_cursor=next_cursor,
    )
