"""FastAPI dependencies every HTTP router uses, the API's and the public feedback pages': the
application state and a database session. Below both (app/api/deps.py adds the principal)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.state import AppState


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.kpr
    return state


async def db_session(
    state: Annotated[AppState, Depends(app_state)],
) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(db_session)]
