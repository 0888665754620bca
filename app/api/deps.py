"""FastAPI dependencies of the API: the bearer-token principal and its roles (the state and the
database session: app/http_deps.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.repository import authenticate
from app.auth.tokens import Principal
from app.http_deps import db_session

_bearer = HTTPBearer(auto_error=False, description="API token from `kpr-mottak tokens create`")


_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def principal(
    session: Annotated[AsyncSession, Depends(db_session)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers=_UNAUTHORIZED)
    found = await authenticate(session, credentials.credentials)
    if found is None:
        raise HTTPException(401, "unknown, revoked or expired token", headers=_UNAUTHORIZED)
    if session.dirty:  # last_used_at moved on: its own small commit, before the route runs
        await session.commit()
    return found


async def operator(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.is_operator:
        raise HTTPException(403, "this endpoint is for KPR operators")
    return who


async def reader(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """An operator or a municipality. The register's loader is refused here rather than in
    each route: an endpoint added later stays closed to it unless it asks for it."""
    if who.is_register:
        raise HTTPException(403, "the register token reads only /api/v1/register")
    return who


async def register_loader(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.is_register:
        raise HTTPException(403, "this endpoint is for the register's loader")
    return who


async def register_or_operator(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not (who.is_register or who.is_operator):
        raise HTTPException(403, "this endpoint is for the register's loader and KPR operators")
    return who


# any valid token, whatever its role (whoami)
Authenticated = Annotated[Principal, Depends(principal)]
AnyPrincipal = Annotated[Principal, Depends(reader)]
Operator = Annotated[Principal, Depends(operator)]
RegisterLoader = Annotated[Principal, Depends(register_loader)]
RegisterOrOperator = Annotated[Principal, Depends(register_or_operator)]
