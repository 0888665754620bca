"""Engine and session factory. Services never commit; the intake service commits once."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import Insert, Select, Table, Text, any_, bindparam, event, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from app.platform.private_files import private_file

SqliteSynchronous = Literal["FULL", "NORMAL", "OFF"]


# SQLite's page cache per connection, in KiB (its default is 2 MB): a large message inserts
# 100 000 rows into indexes keyed by random GUIDs, and with 2 MB every insert missed the
# cache. 32 MB cost the store no less CPU than 8 MB and 25 MB more of the intake's peak
# memory (bench.store and bench.large, docs/performance.md).
SQLITE_CACHE_KIB = 8192


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
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
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
    """Plain inserts of rows given as dicts (every row with the same keys): `write_tuples`."""
    it = iter(rows)
    first = next(it, None)
    if first is None:
        return
    columns = list(first)
    await write_tuples(
        session,
        table,
        columns,
        (tuple(r[c] for c in columns) for r in itertools.chain((first,), it)),
    )


async def write_tuples(
    session: AsyncSession,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    as_stored: frozenset[str] = frozenset(),
) -> None:
    """Plain inserts of positional rows (`columns` names their values), set-based, in the
    session's transaction, each value through its column type's bind processor as a Core
    insert would (not those in `as_stored`: given as the database keeps them, e.g. JSON as
    its text). On PostgreSQL one COPY (asyncpg's binary copy) fed as the rows are made;
    elsewhere executemany of `BATCH` rows on the driver's connection, the next batch made
    while the database writes the last. Core's executemany spent more time building each
    row's parameters than SQLite spent inserting it (100 000 notifications and their events:
    docs/performance.md, "The register store")."""
    connection = await session.connection()
    dialect = connection.dialect
    made = _bound(rows, _processors(table, columns, dialect, as_stored))
    driver: Any = (await connection.get_raw_connection()).driver_connection
    if dialect.name == "postgresql":
        await driver.copy_records_to_table(table.name, records=_paced(made), columns=list(columns))
        return
    quote = dialect.identifier_preparer.quote
    # the names are the table's own (table.c[c] above found each), quoted
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
        f"VALUES ({', '.join('?' for _ in columns)})"
    )
    await _executemany(driver, sql, made)


async def execute_tuples(
    session: AsyncSession, statement: Insert, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """`statement` (an INSERT of `columns`, e.g. with ON CONFLICT) for each of `rows`, as
    `write_tuples` writes them on SQLite: executemany on the driver, batch by batch (Core's
    executemany of 100 000 upserts spent a second building parameters)."""
    connection = await session.connection()
    dialect = connection.dialect
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(columns))
    where = {name: i for i, name in enumerate(columns)}
    order = [where[name] for name in compiled.positiontup]
    table = cast(Table, statement.table)
    made = _bound(rows, _processors(table, columns, dialect, frozenset()))
    driver: Any = (await connection.get_raw_connection()).driver_connection
    if dialect.name == "postgresql":
        await driver.executemany(compiled.string, [[r[i] for i in order] for r in made])
        return
    await _executemany(driver, compiled.string, ([r[i] for i in order] for r in made))


def _processors(
    table: Table, columns: Sequence[str], dialect: Any, as_stored: frozenset[str]
) -> list[Callable[[Any], Any] | None]:
    return [
        None if c in as_stored else table.c[c].type.dialect_impl(dialect).bind_processor(dialect)
        for c in columns
    ]


async def _executemany(driver: Any, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    writing: asyncio.Future[Any] | None = None
    try:
        for batch in batches(rows):
            if writing is not None:
                await (await writing).close()
            writing = asyncio.ensure_future(driver.executemany(sql, batch))
            await asyncio.sleep(0)  # hand it to the driver's thread before making the next
    finally:
        if writing is not None:
            await (await writing).close()


def _bound(
    rows: Iterable[Sequence[Any]], processors: Sequence[Callable[[Any], Any] | None]
) -> Iterator[Sequence[Any]]:
    """`rows` with each value through its processor (only the columns that have one)."""
    some = [(i, p) for i, p in enumerate(processors) if p is not None]
    if not some:
        yield from rows
        return
    for row in rows:
        out = list(row)
        for i, process in some:
            out[i] = process(out[i])
        yield out


async def _paced(rows: Iterable[Sequence[Any]]) -> AsyncIterator[Sequence[Any]]:
    """The rows for COPY, giving the event loop a turn every `BATCH` rows (making them holds
    it: /healthz's p99 must stay low while a large message is stored)."""
    for i, row in enumerate(rows, start=1):
        yield row
        if i % BATCH == 0:
            await asyncio.sleep(0)


async def fetch(session: AsyncSession, query: Select[Any]) -> Sequence[Sequence[Any]]:
    """The rows of `query` as plain sequences, in the session's transaction. On PostgreSQL
    through asyncpg itself (the statement compiled by SQLAlchemy): building Core's rows
    from 6 000 events cost 10-15 ms of a feed page. Values come as asyncpg decodes them,
    which for these types is what Core gives (dates, aware UTC times, JSON decoded); a
    column whose type processes results in Python (an enum, a type decorator that changes
    the value) must not be read this way."""
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        found: Sequence[Sequence[Any]] = (await session.execute(query)).all()
        return found
    return await fetch_on(connection, query)


async def fetch_on(connection: AsyncConnection, query: Select[Any]) -> Sequence[Sequence[Any]]:
    """`fetch` on a PostgreSQL connection of its own (outside any session)."""
    compiled: Any = query.compile(dialect=connection.dialect)
    params = [compiled.params[name] for name in compiled.positiontup]
    driver: Any = (await connection.get_raw_connection()).driver_connection
    return cast("Sequence[Sequence[Any]]", await driver.fetch(compiled.string, *params))


async def is_postgres(session: AsyncSession) -> bool:
    return (await session.connection()).dialect.name == "postgresql"


def one_of(column: Any, values: list[Any], postgres: bool) -> Any:
    """`column IN (...)` with the values as one parameter instead of thousands: on
    PostgreSQL `= ANY(array)`, on SQLite `IN (SELECT value FROM json_each(JSON array))`
    (`values` are strings or integers). Expanding 5 000 bound values per query took most of
    the time that reading an empty history for 100 000 notifications cost (1.9 s on
    PostgreSQL; on SQLite 1.8-3.2 s before, docs/performance.md)."""
    if postgres:
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    listed = func.json_each(bindparam(None, json.dumps(values), type_=Text)).table_valued("value")
    return column.in_(select(listed.c.value))


async def new_ids(session: AsyncSession, table: Table, count: int) -> list[int]:
    """`count` ids for new rows of `table`, ascending, as the database would give them one
    by one: the events refer to their notification by id, and taking the ids first spares
    reading 100 000 of them back. On SQLite the caller's transaction must already hold the
    database's write lock (it has written a row), so nobody else takes the ids after the
    largest."""
    if await is_postgres(session):
        found = await session.scalars(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table.name, "n": count},
        )
        return sorted(int(i) for i in found)
    largest = await session.scalar(select(func.max(table.c.id)))
    first = int(largest or 0) + 1
    return list(range(first, first + count))


def chunks(values: frozenset[str] | frozenset[int]) -> list[list[Any]]:
    ordered: list[Any] = sorted(values)
    return [ordered[i : i + IN_CHUNK] for i in range(0, len(ordered), IN_CHUNK)]


def batches(values: Iterable[_T]) -> Iterator[list[_T]]:
    """Lists of up to `BATCH` items, taken from `values` as they are asked for."""
    it = iter(values)
    while batch := list(itertools.islice(it, BATCH)):
        yield batch
