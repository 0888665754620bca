"""Uploads nobody has authenticated cannot fill the disk or hold the intake (issue 20, hole 7):
real slow clients on raw sockets against a real uvicorn server in this process.

Before the gate, 20 uploads that sent part of their body and stalled held 20 spool files
at once, with no limit on their sum and no deadline. Now the bodies being received and the
bytes spooled are reserved before a byte is written (503 with Retry-After past either), and
a body that does not arrive in time gets 408 with its spool removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from app import bodies
from app.bodies import BodyGate
from app.dev.devpki import DevPki
from app.ebxml.build import BuiltMessage
from app.main import create_app
from app.platform.settings import Settings
from tests.integration.messages import assert_signed_ok_reply, epj_message, reply_of

# the transport before any SQL: nothing that differs between the databases
pytestmark = pytest.mark.databases("sqlite")

KIB = 1024
# A guard against a hang, never a measure: every wait below ends on an event well before it.
GUARD_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Served:
    port: int
    app: FastAPI

    @property
    def gate(self) -> BodyGate:
        gate: BodyGate = self.app.state.kpr.bodies
        return gate

    @property
    def registry(self) -> CollectorRegistry:
        registry: CollectorRegistry = self.app.state.kpr.metrics.registry
        return registry

    def refused(self, reason: str) -> float:
        value = self.registry.get_sample_value("kpr_ebms_bodies_refused_total", {"reason": reason})
        return value or 0.0


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Served]:
    """The app under uvicorn on a free loopback port, in this event loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    application = create_app(settings)
    config = uvicorn.Config(
        application,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started or task.done(), "uvicorn to start")
        assert not task.done(), "uvicorn stopped during start-up"
        yield Served(sock.getsockname()[1], application)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, GUARD_SECONDS)
        sock.close()


async def until(ready: Callable[[], bool], what: str) -> None:
    """Wait (polling) until `ready()`; fail the test if the guard passes first."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + GUARD_SECONDS
    while not ready():
        if loop.time() > give_up:
            pytest.fail(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Upload:
    """A POST /ebms on its own connection, written by hand: as slowly as the test likes."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of the answer (Content-Length long)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), GUARD_SECONDS)
        status_line, *lines = head.decode("latin-1").strip().split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        body = await asyncio.wait_for(self.reader.readexactly(length), GUARD_SECONDS)
        return int(status_line.split()[1]), headers, body

    def close(self) -> None:
        self.writer.close()


async def upload(served: Served, built: BuiltMessage, length: int | None) -> Upload:
    """The request's head sent: Content-Length `length`, or chunked when None."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    head = ["POST /ebms HTTP/1.1", "Host: 127.0.0.1"]
    head += [f"{name}: {value}" for name, value in built.http_headers.items()]
    head.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    up = Upload(reader, writer)
    await up.send(("\r\n".join(head) + "\r\n\r\n").encode())
    return up


def spool_files(spool_dir: Path) -> dict[str, int]:
    """The body spool files now in `spool_dir`, with their sizes."""
    found = {}
    for path in spool_dir.iterdir():
        with contextlib.suppress(FileNotFoundError):  # removed as we looked
            found[path.name] = path.stat().st_size
    return found


async def closed_all(uploads: list[Upload], served: Served, spool_dir: Path) -> None:
    """Every upload hangs up; what they held is released and their files removed."""
    for up in uploads:
        up.close()
    await until(lambda: served.gate.receiving == 0, "the slots to be released")
    await until(lambda: served.gate.spooled_bytes == 0, "the bytes to be released")
    await until(lambda: spool_files(spool_dir) == {}, "the spool files to be removed")


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"  # made by the app at start-up


@pytest.fixture
def small_memory(monkeypatch: pytest.MonkeyPatch) -> int:
    """Bodies go to a file past 1 KiB (not 1 MiB): small uploads show on disk."""
    monkeypatch.setattr(bodies, "MEMORY_BYTES", KIB)
    return KIB


def limited(settings: Settings, spool_dir: Path, **limits: object) -> Settings:
    return settings.model_copy(update={"spool_dir": spool_dir, **limits})


async def test_twenty_stalled_uploads_cannot_pass_the_budget_and_messages_still_go_through(
    settings_with_pki: Settings,
    demo_party: int,
    pki: DevPki,
    spool_dir: Path,
    small_memory: int,
) -> None:
    built = epj_message(pki)
    declared = 64 * KIB  # each stalled upload declares this and sends half of it
    # room for 20 stalled uploads and one ordinary message, not for a 21st upload
    budget = 20 * declared + 2 * len(built.body)
    assert 2 * len(built.body) < declared
    settings = limited(
        settings_with_pki,
        spool_dir,
        spool_budget_bytes=budget,
        max_message_bytes=declared,
        body_timeout_seconds=GUARD_SECONDS * 10,  # stalled for the whole test
    )
    async with running(settings) as served:
        stalled = [await upload(served, built, declared) for _ in range(20)]
        try:
            for up in stalled:
                await up.send(b"x" * (declared // 2))
            # all 20 are on disk, each with what it sent
            await until(
                lambda: sorted(spool_files(spool_dir).values()) == [declared // 2] * 20,
                "20 spool files with half their bodies",
            )
            assert served.gate.receiving == 20
            assert served.gate.spooled_bytes == 20 * declared <= budget
            assert sum(spool_files(spool_dir).values()) <= budget

            # the 21st: 503 with Retry-After on its head alone; its body is never read
            extra = await upload(served, built, declared)
            status, headers, body = await extra.answer()
            assert status == 503
            assert int(headers["retry-after"]) > 0
            assert b"ikke plass" in body
            assert served.refused("budget") == 1
            assert len(spool_files(spool_dir)) == 20
            assert served.gate.spooled_bytes == 20 * declared

            # meanwhile an ordinary message, over a real connection, goes through
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.port}") as client:
                response = await client.post(
                    "/ebms", content=built.body, headers=built.http_headers
                )
            assert response.status_code == 200
            assert_signed_ok_reply(reply_of(pki, response), built.message_id)
            assert served.gate.spooled_bytes == 20 * declared  # its share given back
        finally:
            await closed_all(stalled, served, spool_dir)


async def test_past_the_receiving_bodies_the_next_gets_503_before_its_body(
    settings_with_pki: Settings,
    demo_party: int,
    pki: DevPki,
    spool_dir: Path,
    small_memory: int,
) -> None:
    built = epj_message(pki)
    settings = limited(
        settings_with_pki, spool_dir, max_receiving_bodies=3, body_timeout_seconds=600.0
    )
    async with running(settings) as served:
        stalled = [await upload(served, built, len(built.body)) for _ in range(3)]
        try:
            for up in stalled:
                await up.send(built.body[:100])
            await until(lambda: served.gate.receiving == 3, "3 bodies being received")

            fourth = await upload(served, built, len(built.body))
            status, headers, body = await fourth.answer()
            assert status == 503
            assert int(headers["retry-after"]) > 0
            assert b"for mange meldinger samtidig" in body
            assert served.refused("receiving") == 1

            # a stalled one finishes: its slot is free again, and the next message is taken
            await stalled[0].send(built.body[100:])
            status, _, _ = await stalled[0].answer()
            assert status == 200
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.port}") as client:
                again = epj_message(pki)
                response = await client.post(
                    "/ebms", content=again.body, headers=again.http_headers
                )
            assert response.status_code == 200
        finally:
            await closed_all(stalled, served, spool_dir)


async def test_a_trickling_body_gets_408_and_leaves_no_spool_file(
    settings_with_pki: Settings,
    demo_party: int,
    pki: DevPki,
    spool_dir: Path,
    small_memory: int,
) -> None:
    built = epj_message(pki)
    settings = limited(settings_with_pki, spool_dir, body_timeout_seconds=1.0)
    async with running(settings) as served:
        slow = await upload(served, built, len(built.body))
        await slow.send(built.body[: 2 * KIB])  # past the memory threshold: a file on disk
        await until(lambda: len(spool_files(spool_dir)) == 1, "the body's spool file")

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):  # the server hangs up at its deadline
                for byte in built.body[2 * KIB : -1]:
                    await slow.send(bytes([byte]))
                    await asyncio.sleep(0.1)

        trickling = asyncio.create_task(trickle())
        try:
            status, headers, body = await slow.answer()
        finally:
            trickling.cancel()
        assert status == 408
        assert "Retry-After" not in headers
        assert b"kom ikke fram" in body
        # removed before the answer was written, every reservation given back
        assert spool_files(spool_dir) == {}
        assert served.gate.receiving == 0
        assert served.gate.spooled_bytes == 0
        assert served.refused("timeout") == 1


async def test_a_chunked_body_is_cut_when_it_would_pass_the_budget(
    settings_with_pki: Settings,
    demo_party: int,
    pki: DevPki,
    spool_dir: Path,
    small_memory: int,
) -> None:
    built = epj_message(pki)
    declared = 100 * KIB
    settings = limited(
        settings_with_pki,
        spool_dir,
        spool_budget_bytes=256 * KIB,
        max_message_bytes=128 * KIB,
        body_timeout_seconds=600.0,
    )
    async with running(settings) as served:
        stalled = [await upload(served, built, declared) for _ in range(2)]  # 200 KiB held
        try:
            await until(lambda: served.gate.spooled_bytes == 2 * declared, "200 KiB reserved")
            chunked = await upload(served, built, None)
            answered: asyncio.Task[tuple[int, dict[str, str], bytes]] = asyncio.create_task(
                chunked.answer()
            )

            async def send_chunks() -> None:
                with contextlib.suppress(ConnectionError):  # cut: the server hangs up
                    for _ in range(12):  # 96 KiB at most: under the 128 KiB cap
                        await chunked.send(b"2000\r\n" + b"y" * 8 * KIB + b"\r\n")
                        if answered.done():
                            return

            await send_chunks()
            status, headers, _ = await answered
            assert status == 503
            assert int(headers["retry-after"]) > 0
            assert served.refused("budget") == 1
            # what it had sent is dropped: only the two stalled uploads' reservations remain
            await until(lambda: served.gate.spooled_bytes == 2 * declared, "the cut released")
            assert served.gate.spooled_bytes <= settings.spool_budget_bytes
        finally:
            await closed_all(stalled, served, spool_dir)
