"""Engine and session factory. Services never commit; the intake service commits once."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Literal

from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

SqliteSynchronous = Literal["FULL", "NORMAL", "OFF"]


def _sqlite_pragmas(
    dbapi_connection: DBAPIConnection,
    _record: ConnectionPoolEntry,
    *,
    synchronous: SqliteSynchronous,
) -> None:
    # WAL lets readers run beside the single writer; foreign keys are off by default in SQLite;
    # busy_timeout makes concurrent writers wait instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.close()


def create_engine(
    database_url: str, *, sqlite_synchronous: SqliteSynchronous = "FULL"
) -> AsyncEngine:
    """`sqlite_synchronous` is FULL (an acknowledged message survives a crash) unless the
    settings say otherwise (`KPR_SQLITE_SYNCHRONOUS`: the test suite's throw-away databases)."""
    if database_url.startswith("sqlite"):
        if sqlite_synchronous not in ("FULL", "NORMAL", "OFF"):
            raise ValueError(f"sqlite synchronous mode {sqlite_synchronous!r} is not allowed")
        path = database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(database_url, hide_parameters=True)
        pragmas = partial(_sqlite_pragmas, synchronous=sqlite_synchronous)
        event.listen(engine.sync_engine, "connect", pragmas)
        return engine
    # hide_parameters: bound values (fid, brukerNr) must never reach an error message or log.
    return create_async_engine(
        database_url, pool_pre_ping=True, pool_size=10, max_overflow=10, hide_parameters=True
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
