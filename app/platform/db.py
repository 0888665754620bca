"""Engine and session factory. Services never commit; the intake service commits once."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import Table, any_, bindparam, event, insert, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from app.platform.private_files import private_file

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
    # 32 MB of page cache (SQLite's default is 2 MB): a large message inserts 100 000 rows
    # into indexes keyed by random GUIDs, and with 2 MB every insert missed the cache
    cursor.execute("PRAGMA cache_size=-32768")
    cursor.close()


def create_engine(
    database_url: str, *, sqlite_synchronous: SqliteSynchronous = "FULL"
) -> AsyncEngine:
    """`sqlite_synchronous` is FULL (an acknowledged message survives a crash) unless the
    settings say otherwise (`KPR_SQLITE_SYNCHRONOUS`: the test suite's throw-away databases)."""
    if database_url.startswith("sqlite"):
        if sqlite_synchronous not in ("FULL", "NORMAL", "OFF"):
            raise ValueError(f"sqlite synchronous mode {sqlite_synchronous!r} is not allowed")
        path = database_url.split("///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:":
            # personal data: the file 0600 and its directory 0700 when this makes them
            private_file(Path(path))
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


# --- set-based writes and reads shared by the repositories that store per notification ----

# IN-list size: below both databases' bind-parameter limits (SQLite 32 766, asyncpg 32 767);
# 500 took 1 s of round trips to read an empty history for 100 000 notifications
IN_CHUNK = 5000
# parameter sets per executemany: the rows of one batch are built only when it is written,
# and building them holds the event loop (5 000 took /healthz's p99 past 50 ms)
BATCH = 1000
_T = TypeVar("_T")


async def write_rows(session: AsyncSession, table: Table, rows: Iterable[dict[str, Any]]) -> None:
    """Plain inserts, set-based and batch by batch: COPY on PostgreSQL (asyncpg's binary copy,
    in the session's transaction: 100 000 notifications with their events took 5.9 s as
    executemany), executemany elsewhere."""
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        for batch in batches(rows):
            await session.execute(insert(table), batch)
        return
    driver: Any = (await connection.get_raw_connection()).driver_connection
    for batch in batches(rows):
        columns = list(batch[0])
        await driver.copy_records_to_table(
            table.name, records=[tuple(r[c] for c in columns) for r in batch], columns=columns
        )


async def is_postgres(session: AsyncSession) -> bool:
    return (await session.connection()).dialect.name == "postgresql"


def one_of(column: Any, values: list[Any], postgres: bool) -> Any:
    """`column IN (...)`; on PostgreSQL `= ANY(array)`, one parameter instead of thousands
    (planning 5 000 bound values per query took most of the 1.9 s that reading an empty
    history for 100 000 notifications cost)."""
    if postgres:
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


def chunks(values: frozenset[str] | frozenset[int]) -> list[list[Any]]:
    ordered: list[Any] = sorted(values)
    return [ordered[i : i + IN_CHUNK] for i in range(0, len(ordered), IN_CHUNK)]


def batches(values: Iterable[_T]) -> Iterator[list[_T]]:
    """Lists of up to `BATCH` items, taken from `values` as they are asked for."""
    it = iter(values)
    while batch := list(itertools.islice(it, BATCH)):
        yield batch
