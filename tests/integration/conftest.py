"""Real databases for integration tests: every test runs on SQLite and on PostgreSQL.

PostgreSQL comes from KPR_TEST_POSTGRES_URL (default: the local trust-auth server); each test
session creates its own throw-away database there and drops it at the end. When the server is
unreachable the PostgreSQL variants skip, unless KPR_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import migrate
from app.db import create_engine, session_factory
from app.main import create_app
from app.models import Base
from app.settings import Env, Settings
from tests.integration.databases import dispose_database, fresh_database


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One migrated database per kind for the whole session; tests clean it per test."""
    url = fresh_database(request.param, tmp_path_factory.mktemp("db"))
    migrate.upgrade(url)
    yield url
    dispose_database(url)


async def _truncate(url: str) -> None:
    engine = create_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    try:
        async with engine.begin() as conn:
            if url.startswith("postgresql"):
                await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    await conn.execute(text(f"DELETE FROM {table}"))
    finally:
        await engine.dispose()


@pytest.fixture
async def clean_database_url(database_url: str) -> str:
    await _truncate(database_url)
    return database_url


@pytest.fixture
def settings(clean_database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        env=Env.TEST,
        database_url=clean_database_url,
        pki_dir=tmp_path / "pki",
        log_format="json",
    )


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings.database_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
        yield c
