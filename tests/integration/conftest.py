"""Real databases for integration tests: every test runs on SQLite and on PostgreSQL.

PostgreSQL comes from KPR_TEST_POSTGRES_URL (default: the local trust-auth server); each test
session creates its own throw-away database there and drops it at the end. When the server is
unreachable the PostgreSQL variants skip, unless KPR_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import devsetup, migrate
from app.db import create_engine, session_factory
from app.main import create_app
from app.models import Base
from app.parties import repository as party_repo
from app.query import totals
from app.security.devpki import DevPki, dev_pki, write_dev_pki
from app.settings import Env, ReceiverEnvironment, Settings
from tests.integration.databases import dispose_database, fresh_database
from tests.protector import REGISTER_SETTINGS


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
        # as `kpr-mottak db upgrade` leaves a database: running totals built (empty)
        async with session_factory(engine)() as session:
            await totals.rebuild(session, totals.windows_for(""))
            await session.commit()
    finally:
        await engine.dispose()


@pytest.fixture
async def clean_database_url(database_url: str) -> str:
    await _truncate(database_url)
    return database_url


@pytest.fixture
def settings(clean_database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        env=Env.TEST,
        database_url=clean_database_url,
        pki_dir=tmp_path / "pki",
        log_format="json",
        **REGISTER_SETTINGS,  # type: ignore[arg-type]
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


# --- the intake: a dev PKI, the demo municipality, and messages as an EPJ sends them -------


@pytest.fixture(scope="session")
def pki() -> DevPki:
    """The development PKI (in memory, keys cached per process)."""
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return dev_pki(day)


@pytest.fixture
def settings_with_pki(settings: Settings, pki: DevPki) -> Settings:
    write_dev_pki(settings.pki_dir, pki)
    return settings


@pytest.fixture
async def demo_party(
    settings_with_pki: Settings, sessions: async_sessionmaker[AsyncSession]
) -> int:
    """The demo municipality (HER 8000001, kommune 0301) with the dev PKI certificates."""
    spec = devsetup.demo_party(settings_with_pki.pki_dir)
    async with sessions() as s:
        await party_repo.upsert_party(s, spec)
        await s.commit()
    return spec.her_id


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on a started app (its lifespan run) with `settings`."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
            yield c


@pytest.fixture
async def intake(
    settings_with_pki: Settings,
    demo_party: int,
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on an app that has keys and a registered demo municipality."""
    async with served(settings_with_pki) as c:
        yield c


# KPR addresses of each kind (DOMAIN.md 1: 171479 QA, 122612 production 2023)
TEST_HER, PRODUCTION_HER = 171479, 122612
THREE_ADDRESSES = {
    131725: ReceiverEnvironment.PILOT,
    TEST_HER: ReceiverEnvironment.TEST,
    PRODUCTION_HER: ReceiverEnvironment.PRODUCTION,
}


@pytest.fixture
async def environments(
    settings_with_pki: Settings, demo_party: int
) -> AsyncIterator[httpx.AsyncClient]:
    """An intake with a pilot, a test and a production address."""
    async with served(settings_with_pki.model_copy(update={"receivers": THREE_ADDRESSES})) as c:
        yield c
