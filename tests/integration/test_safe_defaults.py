"""Issue 20, hole 9: unsafe defaults closed. Serving beyond loopback needs an explicit
KPR_ENV; /dev/mail answers dev and loopback only; tokens expire; the database file and its
directory are private; /docs, /openapi.json and /metrics can be closed."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import DateTime, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from app import migrate
from app.auth import repository as tokens
from app.cli.root import app as cli
from app.dev.devsink import deliver_due
from app.main import create_app
from app.models import ApiToken
from app.platform.db import create_engine
from app.platform.settings import Env, Settings
from tests.integration.databases import dispose_database, fresh_database
from tests.integration.seed import add_message, auth, token

Sessions = async_sessionmaker[AsyncSession]
runner = CliRunner()


@pytest.fixture
def cli_env(clean_database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("KPR_DATABASE_URL", clean_database_url)
    monkeypatch.setenv("KPR_ENV", "test")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    return clean_database_url


async def _app_client(
    settings: Settings, client_ip: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    application: FastAPI = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=(client_ip, 4711))
        async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
            yield c


# --- serve --------------------------------------------------------------------------------


@pytest.mark.databases("sqlite")
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "kpr.example.org"])
def test_serve_beyond_loopback_without_kpr_env_refuses_to_start(
    host: str, clean_database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KPR_ENV", raising=False)
    monkeypatch.setenv("KPR_DATABASE_URL", clean_database_url)
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(cli, ["serve", "--host", host, "--port", "1"])
    assert r.exit_code == 2
    assert "without an explicit KPR_ENV" in r.output
    assert "KPR_ENV=production" in r.output


# --- /dev/mail ----------------------------------------------------------------------------


@pytest.mark.databases("sqlite")
@pytest.mark.parametrize(("env", "client_ip", "status"), [
    (Env.DEV, "127.0.0.1", 200),
    (Env.DEV, "::1", 200),
    (Env.DEV, "10.0.0.7", 404),
    (Env.DEV, "192.0.2.1", 404),
    (Env.TEST, "127.0.0.1", 404),
])  # fmt: skip
async def test_dev_mail_is_for_dev_on_loopback_only(
    settings: Settings, sessions: Sessions, tmp_path: Path, env: Env, client_ip: str, status: int
) -> None:
    mail = tmp_path / "var" / "mail"
    m = await add_message(sessions, email_to="innsending@kommune.example")
    assert m.id
    dev = settings.model_copy(update={"env": env, "mail_dir": mail})
    async for client in _app_client(dev, client_ip):
        r = await client.get("/dev/mail")
        assert r.status_code == status
        if status == 404:
            assert (await client.get("/dev/mail/x.eml")).status_code == 404


# --- tokens -------------------------------------------------------------------------------


@pytest.mark.databases("sqlite")
async def test_an_expired_token_is_401_like_a_revoked_one(
    client: httpx.AsyncClient, sessions: Sessions
) -> None:
    now = datetime.now(UTC)
    async with sessions() as s:
        _, soon = await tokens.create_token(
            s, "soon", "operator", expires_at=now + timedelta(days=1)
        )
        _, gone = await tokens.create_token(
            s, "gone", "operator", expires_at=now - timedelta(seconds=1)
        )
        _, unset = await tokens.create_token(s, "unset", "operator")
        await s.commit()
    async with sessions() as s:
        await s.execute(update(ApiToken).where(ApiToken.name == "unset").values(expires_at=None))
        await s.commit()
    assert (await client.get("/api/v1/whoami", headers=auth(soon))).status_code == 200
    for expired in (gone, unset):
        r = await client.get("/api/v1/whoami", headers=auth(expired))
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert "expired" in r.json()["detail"]


@pytest.mark.databases("sqlite")
async def test_a_new_token_expires_in_a_year_by_default(sessions: Sessions) -> None:
    await token(sessions, "ops", "operator")
    async with sessions() as s:
        row = (await s.scalars(select(ApiToken))).one()
    assert row.expires_at is not None
    left = row.expires_at - datetime.now(UTC)
    assert timedelta(days=364) < left <= timedelta(days=365)


@pytest.mark.databases("sqlite")
def test_tokens_create_takes_a_date_or_days_and_list_shows_the_expiry(cli_env: str) -> None:
    # 31 December next year: in winter, so the Oslo midnight below is 23:00 UTC
    new_year_eve = f"{datetime.now(UTC).year + 1}-12-31"
    r = runner.invoke(
        cli, ["tokens", "create", "dated", "--role", "operator", "--expires", new_year_eve]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["tokens", "create", "days", "--role", "operator", "--expires", "30d"])
    assert r.exit_code == 0, r.output
    for bad, says in (
        ("2001-01-01", "has passed"),
        ("0d", "at least 1d"),
        ("soon", "365d"),
        ("2099-12-31", "at most 1830 days"),
        ("1831d", "at most 1830 days"),
    ):
        r = runner.invoke(cli, ["tokens", "create", "x", "--role", "operator", "--expires", bad])
        assert r.exit_code == 2
        assert says in r.output
    r = runner.invoke(cli, ["tokens", "list"])
    assert r.exit_code == 0, r.output
    assert "expires" in r.output
    # valid through 31 December, Norwegian time: midnight in Oslo is 23:00 UTC in winter
    assert f"{new_year_eve}T23:00:00+00:00" in r.output
    in_30_days = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    assert in_30_days in r.output


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_upgrade_gives_existing_tokens_a_year(kind: str, tmp_path: Path) -> None:
    url = fresh_database(kind, tmp_path)
    try:
        migrate.upgrade(url, "0019")

        async def add_old_token() -> None:
            engine = create_engine(url)
            try:
                async with engine.begin() as conn:
                    await conn.execute(
                        # typed, so SQLAlchemy renders it (sqlite3's own adapter is
                        # deprecated since Python 3.12)
                        text(
                            "INSERT INTO api_token (name, token_hash, role, created_at)"
                            " VALUES ('old', 'h', 'operator', :at)"
                        ).bindparams(bindparam("at", type_=DateTime(timezone=True))),
                        {"at": datetime(2020, 1, 1, tzinfo=UTC)},
                    )
            finally:
                await engine.dispose()

        async def expiry() -> datetime | None:
            engine = create_engine(url)
            try:
                async with async_sessionmaker(engine)() as s:
                    return await s.scalar(select(ApiToken.expires_at))
            finally:
                await engine.dispose()

        asyncio.run(add_old_token())
        upgraded = datetime.now(UTC)
        migrate.upgrade(url)
        expires = asyncio.run(expiry())
        assert expires is not None
        assert abs(expires - (upgraded + timedelta(days=365))) < timedelta(minutes=5)
    finally:
        dispose_database(url)


# --- files --------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.databases("sqlite")
async def test_the_database_and_its_directory_are_created_private(
    tmp_path: Path, sessions: Sessions
) -> None:
    var = tmp_path / "var"
    engine = create_engine(f"sqlite+aiosqlite:///{var}/kpr.db")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        await engine.dispose()
    assert _mode(var) == 0o700
    for path in var.iterdir():  # kpr.db and, in WAL mode, its -wal and -shm
        assert _mode(path) == 0o600, path.name
    # the mail sink's files are private too
    m = await add_message(sessions)
    async with sessions() as s:
        from app.models import NotificationOutbox

        s.add(
            NotificationOutbox(
                message_id=m.id, recipient="a@kommune.example", subject="S", body="B"
            )
        )
        await s.commit()
    assert await deliver_due(sessions, var / "mail", "kpr@example.org") == 1
    assert _mode(var / "mail") == 0o700
    assert [_mode(p) for p in (var / "mail").iterdir()] == [0o600]


# --- docs and metrics ---------------------------------------------------------------------


@pytest.mark.databases("sqlite")
async def test_public_docs_false_closes_docs_and_openapi(settings: Settings) -> None:
    closed = settings.model_copy(update={"public_docs": False})
    async for client in _app_client(closed):
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 404, path
        assert (await client.get("/healthz")).status_code == 200
    async for client in _app_client(settings):
        assert (await client.get("/openapi.json")).status_code == 200


@pytest.mark.databases("sqlite")
async def test_metrics_token_puts_metrics_behind_a_bearer_token(settings: Settings) -> None:
    guarded = Settings(**{**settings.model_dump(), "metrics_token": "s3cret-metrics"})
    async for client in _app_client(guarded):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-metrics"}):
            r = await client.get("/metrics", headers=headers)
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == "Bearer"
            assert "kpr_http_requests_total" not in r.text
        r = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
        assert r.status_code == 200
        assert "kpr_http_requests_total" in r.text
