"""The decrypted payload lives in a spool (`cms.new_spool`: memory up to a threshold, then a
temporary file) that is closed when the request ends, however it ends (issue 11); so does the
body as it arrived (`bodies.BodySpool`: a `kpr-body-*.part` file in KPR_SPOOL_DIR, issue 20)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import undefer

from app import bodies
from app.dev.devpki import DevPki
from app.intake import router
from app.models import Message
from app.platform.settings import Settings
from app.security import cms
from tests.integration.conftest import served
from tests.integration.messages import assert_signed_ok_reply, epj_message, post, reply_of

# the payload spool: no SQL that differs between the databases
pytestmark = pytest.mark.databases("sqlite")


def _files(path: Path) -> list[Path]:
    return list(path.iterdir())


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    path = tmp_path / "spools"
    path.mkdir()
    return path


@pytest.fixture
async def intake(
    settings_with_pki: Settings, demo_party: int, spool_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The intake with its bodies spooled in `spool_dir`."""
    async with served(settings_with_pki.model_copy(update={"spool_dir": spool_dir})) as c:
        yield c


@pytest.fixture
def body_spools(monkeypatch: pytest.MonkeyPatch) -> list[bodies.BodySpool]:
    """Every body spool the intake makes, written to a file from its first byte."""
    made: list[bodies.BodySpool] = []

    class Recorded(bodies.BodySpool):
        def __init__(self, directory: Path | None) -> None:
            super().__init__(directory)
            made.append(self)

    monkeypatch.setattr(bodies, "MEMORY_BYTES", 0)
    monkeypatch.setattr(router, "BodySpool", Recorded)
    return made


@pytest.fixture
def spools(
    monkeypatch: pytest.MonkeyPatch, spool_dir: Path, body_spools: list[bodies.BodySpool]
) -> list[IO[bytes]]:
    """Every payload spool the intake makes, rolled over to a temporary file in `spool_dir`
    at once (and the bodies' spools there too, in `body_spools`)."""
    made: list[IO[bytes]] = []

    def tiny_spool(max_size: int = cms.SPOOL_MAX_SIZE) -> IO[bytes]:
        spool = tempfile.SpooledTemporaryFile(max_size=1, mode="w+b", dir=str(spool_dir))  # noqa: SIM115
        made.append(spool)
        return spool

    monkeypatch.setattr(cms, "new_spool", tiny_spool)
    return made


async def test_the_spooled_body_and_payload_are_closed_when_the_request_ends(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    spools: list[IO[bytes]],
    body_spools: list[bodies.BodySpool],
    spool_dir: Path,
) -> None:
    built = epj_message(pki)
    reply = reply_of(pki, await post(intake, built))
    assert_signed_ok_reply(reply, built.message_id)
    # the body's spool (as it arrived) and the payload's, both on disk, both gone
    assert len(body_spools) == 1
    body_file = body_spools[0].file
    assert Path(body_file.name).parent == spool_dir
    assert Path(body_file.name).name.startswith("kpr-body-")
    assert body_file.closed
    assert len(spools) == 1
    assert all(s._rolled for s in spools)  # type: ignore[attr-defined]
    assert all(s.closed for s in spools)
    assert _files(spool_dir) == []
    async with sessions() as s:
        message = (await s.scalars(select(Message).options(undefer(Message.raw)))).one()
    assert message.status == "OK"
    assert message.raw == built.body
    assert message.size_bytes == len(built.body)
    assert message.sha256 == hashlib.sha256(built.body).hexdigest()  # hashed as it arrived


async def test_the_spool_is_closed_when_a_step_fails(
    intake: httpx.AsyncClient,
    pki: DevPki,
    spools: list[IO[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    spool_dir: Path,
) -> None:
    from app.intake import stages

    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in a step")

    monkeypatch.setattr(stages, "read_business", bug)
    reply = reply_of(pki, await post(intake, epj_message(pki)))
    assert reply.header is not None
    assert [e.error_code for e in reply.header.errors] == ["DeliveryFailure"]
    assert spools
    assert all(s.closed for s in spools)
    assert _files(spool_dir) == []


async def test_the_spool_is_closed_when_the_payload_is_rejected(
    intake: httpx.AsyncClient,
    pki: DevPki,
    spools: list[IO[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.intake import stages

    monkeypatch.setattr(stages, "count_elements_in", lambda source: 10**9)
    reply = reply_of(pki, await post(intake, epj_message(pki)))
    assert reply.apprec is not None  # too many elements: an AppRec rejection
    assert spools
    assert all(s.closed for s in spools)


async def test_a_body_past_the_cap_without_content_length_is_refused_and_dropped(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    body_spools: list[bodies.BodySpool],
    spool_dir: Path,
    settings_with_pki: Settings,
) -> None:
    built = epj_message(pki)
    cap = settings_with_pki.max_message_bytes
    chunk = built.body + b" " * 65536

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read until the cap
        sent = 0
        while sent <= cap:
            yield chunk
            sent += len(chunk)

    response = await intake.post("/ebms", content=chunks(), headers=built.http_headers)

    assert response.status_code == 413
    assert len(body_spools) == 1
    assert body_spools[0].file.closed
    assert _files(spool_dir) == []
    async with sessions() as s:
        message = (await s.scalars(select(Message).options(undefer(Message.raw)))).one()
    assert message.status == "TOO_LARGE"
    assert message.raw is None


async def test_a_spool_that_cannot_be_written_is_a_503_not_a_500(
    intake: httpx.AsyncClient,
    pki: DevPki,
    spool_dir: Path,
    body_spools: list[bodies.BodySpool],
) -> None:
    os.rmdir(spool_dir)  # the disk under KPR_SPOOL_DIR gone (or full) after start-up
    response = await post(intake, epj_message(pki))
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert "kunne ikke mellomlagre" in response.json()["detail"]
    assert body_spools[0].file.closed
