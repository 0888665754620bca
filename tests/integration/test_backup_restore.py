"""Backup and restore as docs/operations.md describes them, on SQLite (the online backup API)
and PostgreSQL (pg_dump -Fc, pg_restore into an empty database): the restored service answers
a resend with the very reply it gave before the backup."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.dev.devpki import DevPki
from app.main import create_app
from app.platform.settings import Settings
from tests.integration.databases import dispose_database, fresh_database
from tests.integration.messages import epj_message, post


def _tool(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)),
        None,
    )
    if found is None:
        if os.environ.get("KPR_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{name} is required")
        pytest.skip(f"{name} not found")
    return found


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _backup_and_restore(url: str, tmp: Path) -> str:
    """Back up `url`, restore into a new empty database, return the restored one's URL."""
    if url.startswith("sqlite"):
        source = url.split("///", 1)[1]
        backup = tmp / "backup.db"
        with sqlite3.connect(source) as src, sqlite3.connect(backup) as dst:
            src.backup(dst)  # consistent while the service writes
        restored = tmp / "restored.db"
        shutil.copy(backup, restored)
        return f"sqlite+aiosqlite:///{restored}"
    dump = tmp / "kpr.dump"
    subprocess.run([_tool("pg_dump"), "-Fc", "-f", str(dump), _libpq(url)], check=True, timeout=300)
    target = fresh_database("postgresql", tmp)  # empty: no schema, no rows
    subprocess.run(
        [_tool("pg_restore"), "--no-owner", "-d", _libpq(target), str(dump)],
        check=True,
        timeout=300,
    )
    return target


async def test_a_restore_into_an_empty_database_answers_resends_byte_for_byte(
    intake: httpx.AsyncClient,
    pki: DevPki,
    settings_with_pki: Settings,
    tmp_path: Path,
) -> None:
    built = epj_message(pki)
    first = await post(intake, built)
    assert first.status_code == 200
    restored = await asyncio.to_thread(
        _backup_and_restore, settings_with_pki.database_url, tmp_path
    )
    try:
        app = create_app(settings_with_pki.model_copy(update={"database_url": restored}))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
                again = await post(c, built)
    finally:
        await asyncio.to_thread(dispose_database, restored)
    assert again.content == first.content
