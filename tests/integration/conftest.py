"""Real databases for integration tests: a test runs on SQLite and on PostgreSQL, or on SQLite
alone where its module is marked `sqlite_only` (see "databases" below).

PostgreSQL comes from KPR_TEST_POSTGRES_URL (default: the local trust-auth server); each test
session creates its own throw-away database there and drops it at the end. When the server is
unreachable the PostgreSQL variants skip, unless KPR_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import MetaData, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import migrate
from app.dev import devsetup
from app.dev.devpki import DevPki, dev_pki, write_dev_pki
from app.main import create_app
from app.models import TotalsState, utcnow
from app.parties import repository as party_repo
from app.platform.db import create_engine, session_factory
from app.platform.settings import Env, ReceiverEnvironment, Settings
from app.query import totals
from tests.integration.databases import dispose_database, fresh_database, run_admin_sql
from tests.protector import REGISTER_SETTINGS

# --- databases -----------------------------------------------------------------------------
# A test that uses a database (through `database_url`, `clean_database_url`, `settings`,
# `sessions`, `app`, `client`, `intake`, ...) runs once on SQLite and once on PostgreSQL: SQL
# is where the two differ. A module whose SQL cannot differ between them (transport, XML-DSig
# and CMS, revocation, auth, interop: what the intake checks before its one store) says
#
#     pytestmark = pytest.mark.databases("sqlite")
#
# and runs on SQLite alone; a test in it that does reach SQL that differs (a value too long
# for its column, a NUL byte PostgreSQL refuses) says `@pytest.mark.databases("sqlite",
# "postgresql")`: the mark closest to the test wins. New tests of SQL (history, totals, the
# register, paging, retention, ...) need no mark: both databases is the default.

DATABASE_KINDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames:
        mark = metafunc.definition.get_closest_marker("databases")
        kinds = list(mark.args) if mark is not None else list(DATABASE_KINDS)
        if not kinds or set(kinds) - set(DATABASE_KINDS):
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: databases{tuple(kinds)}")
        metafunc.parametrize("database_url", kinds, indirect=True, scope="session")


@dataclass(frozen=True, slots=True)
class _Migrated:
    """A database migrated once per test session (per xdist worker), emptied before each test."""

    url: str
    tables: tuple[str, ...]  # every table the migrations made, children before parents
    superuser: bool  # PostgreSQL: may switch its triggers off to empty the tables
    # SQLite: the CREATE TRIGGER statements of the append-only access log, dropped and made
    # again inside the emptying transaction (the one way to empty it; tests only)
    access_log_triggers: tuple[str, ...] = ()


class _Databases:
    """The session's migrated databases, made when a test first asks for their kind."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.made: dict[str, _Migrated] = {}

    def get(self, kind: str) -> _Migrated:
        if kind not in self.made:
            url = fresh_database(kind, self.tmp)
            self.made[kind] = _Migrated(url, (), False)  # dropped at the end even if this fails
            if kind == "postgresql":  # a throw-away database need not wait for the disk
                name = make_url(url).database
                run_admin_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
            migrate.upgrade(url)
            self.made[kind] = asyncio.run(_inspect(url))
        return self.made[kind]

    def by_url(self, url: str) -> _Migrated:
        return next(made for made in self.made.values() if made.url == url)

    def dispose(self) -> None:
        for made in self.made.values():
            dispose_database(made.url)


async def _inspect(url: str) -> _Migrated:
    engine = create_engine(url)
    metadata = MetaData()
    try:
        async with engine.connect() as conn:
            await conn.run_sync(metadata.reflect)
            if url.startswith("postgresql"):
                superuser = await conn.scalar(text("SELECT current_setting('is_superuser')"))
                extra = []
            else:
                superuser = None
                found = "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'"
                extra = ["sqlite_sequence"] if await conn.scalar(text(found)) else []
                triggers = (
                    "SELECT sql FROM sqlite_master"
                    " WHERE type = 'trigger' AND tbl_name = 'access_log'"
                )
                made = tuple((await conn.scalars(text(triggers))).all())
    finally:
        await engine.dispose()
    tables = [t.name for t in reversed(metadata.sorted_tables) if t.name != "alembic_version"]
    if url.startswith("postgresql"):
        return _Migrated(url, (*tables, *extra), superuser == "on")
    return _Migrated(url, (*tables, *extra), False, made)


@pytest.fixture(scope="session")
def migrated_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Databases]:
    databases = _Databases(tmp_path_factory.mktemp("db"))
    yield databases
    databases.dispose()


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, migrated_databases: _Databases) -> str:
    """One migrated database per kind for the whole session; tests empty it per test."""
    kind: str = request.param
    return migrated_databases.get(kind).url


async def _empty(db: _Migrated) -> None:
    """Every table emptied (identities restarted on PostgreSQL), then the running totals'
    state as `kpr-mottak db upgrade` leaves an empty database: built for the default calendar.
    DELETE, not TRUNCATE: on PostgreSQL a TRUNCATE of 25 tables costs about 0.6 s."""
    engine = create_engine(db.url, sqlite_synchronous="OFF")
    try:
        if db.url.startswith("postgresql"):
            async with engine.connect() as conn:
                # one round trip: several statements in one query run as one transaction
                raw = await conn.get_raw_connection()
                await raw.driver_connection.execute(_postgres_emptied(db))  # type: ignore[union-attr]
            return
        async with engine.begin() as conn:
            # the access log's triggers refuse DELETE: dropped, and made again before commit
            for name in _trigger_names(db.access_log_triggers):
                await conn.execute(text(f'DROP TRIGGER "{name}"'))
            for table in db.tables:
                await conn.execute(text(f'DELETE FROM "{table}"'))
            for sql in db.access_log_triggers:
                await conn.execute(text(sql))
            await conn.execute(
                insert(TotalsState).values(
                    id=1, calendar_sha256=totals.windows_for("").sha256, built_at=utcnow()
                )
            )
    finally:
        await engine.dispose()


def _trigger_names(statements: tuple[str, ...]) -> list[str]:
    """The names in `CREATE TRIGGER [IF NOT EXISTS] name ...` statements."""
    names = []
    for sql in statements:
        words = sql.replace("IF NOT EXISTS", "").split()
        names.append(words[2].strip('"'))
    return names


def _postgres_emptied(db: _Migrated) -> str:
    names = [f'"{t}"' for t in db.tables]
    if db.superuser:
        # triggers off for this transaction: access_log refuses DELETE otherwise
        empty = ["SET LOCAL session_replication_role = replica"]
        empty += [f"DELETE FROM {name}" for name in names]
        empty += ["SELECT setval(seqrelid::regclass, seqstart, false) FROM pg_sequence"]
    else:
        # the table's owner may disable its triggers; enabled again in the same transaction
        empty = ["ALTER TABLE access_log DISABLE TRIGGER USER"]
        empty += [f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"]
        empty += ["ALTER TABLE access_log ENABLE TRIGGER USER"]
    sha = totals.windows_for("").sha256  # hex digits
    state = f"INSERT INTO totals_state (id, calendar_sha256, built_at) VALUES (1, '{sha}', now())"
    return ";\n".join([*empty, state])


@pytest.fixture
async def clean_database_url(database_url: str, migrated_databases: _Databases) -> str:
    """`database_url`, emptied for this test."""
    await _empty(migrated_databases.by_url(database_url))
    return database_url


# --- snapshots: an expensive world built once per session and database, copied per test ----


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every row of a migrated database (and, on PostgreSQL, its sequences' positions): what
    an expensive fixture left, put back into the emptied database of a later test in a few
    INSERTs instead of building it again. The rows are the drivers' own values, so they go
    back unchanged."""

    rows: tuple[tuple[str, tuple[str, ...], tuple[tuple[object, ...], ...]], ...]
    sequences: tuple[tuple[str, int, bool], ...]


async def take_snapshot(url: str, migrated: _Databases) -> Snapshot:
    db = migrated.by_url(url)
    engine = create_engine(url, sqlite_synchronous="OFF")
    try:
        async with engine.connect() as conn:
            json_columns: dict[str, set[str]] = {t: set() for t in db.tables}
            if url.startswith("postgresql"):
                found_json = await conn.execute(
                    text(
                        "SELECT table_name, column_name FROM information_schema.columns"
                        " WHERE table_schema = current_schema() AND data_type IN ('json', 'jsonb')"
                    )
                )
                for table_name, column in found_json.all():
                    json_columns.setdefault(str(table_name), set()).add(str(column))
            rows = []
            for table in reversed(db.tables):  # parents first, the order they go back in
                result = await conn.execute(text(f'SELECT * FROM "{table}"'))
                columns = tuple(result.keys())
                found = tuple(tuple(row) for row in result.all())
                if url.startswith("postgresql"):  # asyncpg decodes JSON but wants text back
                    found = _json_as_text(found, [c in json_columns[table] for c in columns])
                if found:
                    rows.append((table, columns, found))
            sequences: list[tuple[str, int, bool]] = []
            if url.startswith("postgresql"):
                names = (
                    await conn.scalars(text("SELECT seqrelid::regclass::text FROM pg_sequence"))
                ).all()
                for name in names:
                    position = await conn.execute(text(f"SELECT last_value, is_called FROM {name}"))
                    last, called = position.one()
                    sequences.append((str(name), int(str(last)), bool(called)))
    finally:
        await engine.dispose()
    return Snapshot(tuple(rows), tuple(sequences))


def _json_as_text(
    rows: tuple[tuple[object, ...], ...], is_json: list[bool]
) -> tuple[tuple[object, ...], ...]:
    if not any(is_json):
        return rows
    return tuple(
        tuple(
            json.dumps(v) if j and v is not None else v for v, j in zip(row, is_json, strict=True)
        )
        for row in rows
    )


async def restore_snapshot(url: str, snapshot: Snapshot) -> None:
    """`snapshot`'s rows into the database at `url`, emptied before (`clean_database_url`)."""
    engine = create_engine(url, sqlite_synchronous="OFF")
    try:
        async with engine.begin() as conn:
            for table, columns, found in snapshot.rows:
                if table in ("totals_state",):
                    await conn.execute(text(f'DELETE FROM "{table}"'))  # the emptying made one
                names = ", ".join(f'"{c}"' for c in columns)
                values = ", ".join(f":p{i}" for i in range(len(columns)))
                params = [{f"p{i}": v for i, v in enumerate(row)} for row in found]
                await conn.execute(
                    text(f'INSERT INTO "{table}" ({names}) VALUES ({values})'), params
                )
            for name, last, called in snapshot.sequences:
                await conn.execute(
                    text("SELECT setval(:name, :last, :called)"),
                    {"name": name, "last": last, "called": called},
                )
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def snapshots() -> dict[tuple[str, str], Snapshot]:
    """Snapshots kept for the session (per xdist worker), by (fixture, database URL)."""
    return {}


@pytest.fixture
def settings(clean_database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        env=Env.TEST,
        database_url=clean_database_url,
        pki_dir=tmp_path / "pki",
        log_format="json",
        sqlite_synchronous="OFF",  # a throw-away database: no fsync per commit
        **REGISTER_SETTINGS,  # type: ignore[arg-type]
    )


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
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


@contextlib.contextmanager
def on_a_socket(settings: Settings) -> Iterator[str]:
    """The app on a real socket (uvicorn in a thread, port chosen by the OS): its base URL."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            if not thread.is_alive():
                pytest.fail("uvicorn stopped during start-up")
            threading.Event().wait(0.02)
        else:
            pytest.fail("uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


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
