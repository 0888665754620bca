"""Resources that live as long as the app: built in the lifespan, reached via app.state.kpr."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.keyring import Keyring
from app.metrics import Metrics
from app.settings import Settings


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    metrics: Metrics
    keyring: Keyring
