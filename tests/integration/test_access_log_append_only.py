"""Issue 20, hole 8: the access log is append-only on both databases. The database's own
triggers (migrations 0013 and 0020) refuse UPDATE and DELETE however the SQL is spelt; the
application refuses ORM and Core statements by their target table, before any SQL is sent."""

from __future__ import annotations

from typing import cast

import httpx
import pytest
from sqlalchemy import Alias, Table, delete, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import AccessLog, AppendOnlyError
from app.platform.db import create_engine
from app.platform.settings import Settings
from tests.integration.seed import add_message, auth, token

Sessions = async_sessionmaker[AsyncSession]

# The regex of old saw only the first; each is one way of spelling the same statement.
TEXTUAL = (
    "DELETE FROM access_log",
    'DELETE FROM "access_log"',
    "delete from ACCESS_LOG where id > 0",
    "DELETE\nFROM\taccess_log",
    "DELETE FROM access_log WHERE id IN (SELECT id FROM access_log)",
    "UPDATE access_log SET actor = 'x'",
    "UPDATE \"access_log\" SET actor = 'x'",
    "update Access_Log set resource = 'y' where id = id",
)


async def _one_read(client: httpx.AsyncClient, sessions: Sessions) -> None:
    operator = auth(await token(sessions, "ops", "operator"))
    m = await add_message(sessions)
    assert (await client.get(f"/api/v1/messages/{m.id}/raw", headers=operator)).is_success


async def _rows(sessions: Sessions) -> list[str]:
    async with sessions() as s:
        return list((await s.scalars(text("SELECT actor FROM access_log"))).all())


@pytest.mark.parametrize("sql", TEXTUAL)
async def test_the_database_refuses_every_spelling_of_a_change(
    client: httpx.AsyncClient, sessions: Sessions, settings: Settings, sql: str
) -> None:
    await _one_read(client, sessions)
    engine = create_engine(settings.database_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(sql))
    finally:
        await engine.dispose()
    async with sessions() as s:  # through a session as well: the same refusal
        with pytest.raises(DBAPIError, match="append-only"):
            await s.execute(text(sql))
    assert await _rows(sessions) == ["ops"]


async def test_truncate_is_refused_on_postgresql(
    client: httpx.AsyncClient, sessions: Sessions, settings: Settings
) -> None:
    await _one_read(client, sessions)
    if not settings.database_url.startswith("postgresql"):
        return  # SQLite has no TRUNCATE (its DELETE without WHERE is refused above)
    engine = create_engine(settings.database_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text("TRUNCATE access_log CASCADE"))
    finally:
        await engine.dispose()
    assert await _rows(sessions) == ["ops"]


async def test_the_application_refuses_by_table_before_sending_sql(
    client: httpx.AsyncClient, sessions: Sessions, settings: Settings
) -> None:
    await _one_read(client, sessions)
    table = cast(Table, AccessLog.__table__)
    aliased = cast(Alias, table.alias("a"))
    statements = (
        delete(AccessLog),
        update(AccessLog).values(actor="x"),
        delete(table),
        delete(aliased).where(aliased.c.id > 0),
        update(aliased).values(actor="x"),
    )
    for statement in statements:
        async with sessions() as s:
            with pytest.raises(AppendOnlyError):
                await s.execute(statement)
        engine = create_engine(settings.database_url)
        try:
            with pytest.raises(AppendOnlyError):
                async with engine.begin() as conn:
                    await conn.execute(statement)
        finally:
            await engine.dispose()
    assert await _rows(sessions) == ["ops"]
