"""Throw-away databases for tests: SQLite files and PostgreSQL databases."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    return os.environ.get("KPR_TEST_POSTGRES_URL", DEFAULT_PG)


async def _pg_admin(sql: str) -> None:
    engine = create_async_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def run_admin_sql(sql: str) -> None:
    """One statement on the test server's admin database (autocommit)."""
    asyncio.run(_pg_admin(sql))


def create_postgres_database() -> str:
    """A fresh database on the test server; skips (or fails in CI) when unreachable."""
    name = f"kpr_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, Exception) as exc:
        if os.environ.get("KPR_REQUIRE_POSTGRES") == "1":
            raise RuntimeError(f"PostgreSQL is required but unreachable: {exc}") from exc
        pytest.skip(f"PostgreSQL unreachable ({type(exc).__name__}); set KPR_TEST_POSTGRES_URL")
    return make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def fresh_database(kind: str, tmp: Path) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / f'kpr-{uuid.uuid4().hex[:8]}.db'}"
    return create_postgres_database()


def dispose_database(url: str) -> None:
    if url.startswith("postgresql"):
        drop_postgres_database(url)
