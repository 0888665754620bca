"""SIGTERM to a real `kpr-mottak serve` while a large message is being received: the listener
closes, the message in progress finishes and gets its reply, and the lifespan runs to the end.
When the grace period runs out first, the message is cut off whole: nothing of it is stored."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.ebxml.build import BuiltMessage
from app.models import Message
from app.platform.db import create_engine, session_factory
from tests.e2e.processes import Municipality, Running, prepare, start
from tests.integration.messages import assert_signed_ok_reply

pytestmark = pytest.mark.e2e
DEADLINE_SECONDS = 60.0
LARGE = 10_000  # notifications


def _listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


async def _until_closed(server: Running) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if not _listening(server.url):
            return
        await asyncio.sleep(0.1)
    pytest.fail("the listener was not closed after SIGTERM")


async def _in_progress(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if "kpr_ebms_in_progress 1.0" in (await client.get("/metrics")).text:
            return
        await asyncio.sleep(0.1)
    pytest.fail("the message never reached the server")


def _held_back(built: BuiltMessage, go_on: asyncio.Event) -> AsyncIterator[bytes]:
    half = len(built.body) // 2

    async def body() -> AsyncIterator[bytes]:
        yield built.body[:half]
        await go_on.wait()
        yield built.body[half:]

    return body()


async def _stored(database_url: str, body: bytes) -> list[str]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as s:
            digest = hashlib.sha256(body).hexdigest()
            return list(await s.scalars(select(Message.status).where(Message.sha256 == digest)))
    finally:
        await engine.dispose()


async def test_sigterm_lets_a_large_message_in_progress_finish(tmp_path: Path) -> None:
    env = prepare(tmp_path, KPR_SHUTDOWN_GRACE_SECONDS="120")
    server = start(env, tmp_path)
    muni = Municipality.from_pki(tmp_path / "pki")
    built = muni.message(LARGE)
    go_on = asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=180.0) as client:
            upload = asyncio.create_task(
                client.post("/ebms", content=_held_back(built, go_on), headers=built.http_headers)
            )
            await _in_progress(client)
            server.proc.send_signal(signal.SIGTERM)
            await _until_closed(server)  # no new messages from here on
            go_on.set()
            r = await upload
        assert r.status_code == 200
        assert_signed_ok_reply(muni.read(r.content, r.headers["content-type"]), built.message_id)
        await asyncio.to_thread(server.proc.wait, DEADLINE_SECONDS)
    finally:
        server.stop()
    assert server.stopped_cleanly()
    assert await _stored(env["KPR_DATABASE_URL"], built.body) == ["OK"]


async def test_a_message_cut_off_by_the_grace_period_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    env = prepare(tmp_path, KPR_SHUTDOWN_GRACE_SECONDS="1")
    server = start(env, tmp_path)
    muni = Municipality.from_pki(tmp_path / "pki")
    built = muni.message()
    go_on = asyncio.Event()  # the sender stalls past the grace period
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=180.0) as client:
            upload = asyncio.create_task(
                client.post("/ebms", content=_held_back(built, go_on), headers=built.http_headers)
            )
            await _in_progress(client)
            server.proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(server.proc.wait, DEADLINE_SECONDS)
            go_on.set()  # too late: the server is gone
            with pytest.raises(httpx.TransportError):
                await asyncio.wait_for(upload, DEADLINE_SECONDS)
    finally:
        go_on.set()
        server.stop()
    assert "service.stopped" in server.logs()
    assert await _stored(env["KPR_DATABASE_URL"], built.body) == []
