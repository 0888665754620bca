"""Who is asking, and the access-log entry for a response that carries personal data."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.tokens import Principal
from app.query.access_log import Access, record_access


def log_access(
    session: AsyncSession,
    request: Request,
    who: Principal,
    action: str,
    *,
    kommune_nr: str | None = None,
    message_ids: Sequence[int] = (),
    resource: str | None = None,
) -> None:
    """Add the access-log rows for this request; the caller commits with the read.
    `resource` defaults to the path (the feed names its page: path and query)."""
    record_access(
        session,
        Access(
            token_id=who.token_id,
            actor=who.name,
            role=who.label,
            action=action,
            resource=resource or request.url.path,
            kommune_nr=kommune_nr,
            message_ids=message_ids,
            request_id=getattr(request.state, "request_id", None),
            remote_addr=request.client.host if request.client else None,
        ),
    )


def only_kommune(who: Principal) -> str | None:
    """None for operators (everything); the municipality's number otherwise. A municipality
    token without a number sees nothing ("----" matches no kommunenr)."""
    return None if who.is_operator else (who.kommune_nr or "----")
