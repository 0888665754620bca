"""OCSP where the certificate names a responder and no CRL decides: a real responder on
loopback says good (accepted), revoked (refused), or nothing (temporary DeliveryFailure). The
responder is asked in the background: the first message gets the temporary DeliveryFailure at
once, its resend is answered with what the responder said."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev import devsetup
from app.dev.devpki import DevPki, make_party, write_dev_pki
from app.main import create_app
from app.models import Finding, Message
from app.parties import repository as party_repo
from app.platform.settings import Settings
from tests.hostileserver import Route, hostile_server
from tests.integration.messages import assert_signed_ok_reply, epj_message, post, reply_of
from tests.integration.seed import auth, token
from tests.ocspserver import Responder, ocsp_responder

# revocation: no SQL that differs between the databases
pytestmark = pytest.mark.databases("sqlite")


@pytest.fixture
def responder(pki: DevPki) -> Iterator[Responder]:
    with ocsp_responder(Responder(pki.ca)) as running:
        yield running


def _pki(pki: DevPki, url: str) -> DevPki:
    now = datetime.now(UTC).replace(microsecond=0)
    party = make_party(pki.ca, "Demo kommune", pki.municipality.orgnr, now, ocsp_url=url)
    return replace(pki, municipality=party)


async def _client(
    settings: Settings,
    pki: DevPki,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[httpx.AsyncClient]:
    write_dev_pki(settings.pki_dir, pki)
    (tmp_path / "no-crls").mkdir()
    async with sessions() as s:
        await party_repo.upsert_party(s, devsetup.demo_party(settings.pki_dir))
        await s.commit()
    app = create_app(
        settings.model_copy(
            update={
                "crl_dir": tmp_path / "no-crls",
                "crl_cache_dir": tmp_path / "cache",
                "outbound_allow_private": True,  # the responder is on loopback
            }
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
            yield c


async def _rules(sessions: async_sessionmaker[AsyncSession], body: bytes) -> list[str]:
    digest = hashlib.sha256(body).hexdigest()
    async with sessions() as s:
        message = (await s.scalars(select(Message).where(Message.sha256 == digest))).one()
        query = select(Finding.rule_id).where(Finding.message_id == message.id)
        return list(await s.scalars(query))


async def _ocsp_count(client: httpx.AsyncClient, outcome: str) -> float:
    text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "kpr_ocsp_requests_total" and sample.labels == {"outcome": outcome}:
                return float(sample.value)
    return 0.0


async def _until_counted(client: httpx.AsyncClient, outcome: str) -> None:
    """Until the background question has been answered with `outcome` (once)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if await _ocsp_count(client, outcome) == 1:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"no OCSP outcome {outcome} within 60 s")


def _assert_delivery_failure(pki: DevPki, r: httpx.Response) -> None:
    reply = reply_of(pki, r)
    assert reply.header is not None
    assert [(e.error_code, e.severity) for e in reply.header.errors] == [
        ("DeliveryFailure", "Warning")
    ]


async def test_a_good_ocsp_answer_accepts_the_signer(
    settings: Settings,
    pki: DevPki,
    responder: Responder,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ours = _pki(pki, responder.url)
    for cert in (ours.municipality.signing, ours.municipality.encryption):
        responder.certs[cert.certificate.serial_number] = cert.certificate
    async for client in _client(settings, ours, tmp_path, sessions):
        _assert_delivery_failure(ours, await post(client, epj_message(ours)))

        await _until_counted(client, "good")
        headers = auth(await token(sessions, "ops", "operator"))
        held = (await client.get("/api/v1/revocation", headers=headers)).json()["ocsp_answers"]
        assert [a["revoked"] for a in held] == [False]
        built = epj_message(ours)
        r = await post(client, built)
        assert_signed_ok_reply(reply_of(ours, r), built.message_id)
        again = epj_message(ours)  # the answer is kept: not asked again
        r = await post(client, again)
        assert_signed_ok_reply(reply_of(ours, r), again.message_id)
    assert responder.asked == 1


async def test_a_revoked_ocsp_answer_refuses_the_signer(
    settings: Settings,
    pki: DevPki,
    responder: Responder,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ours = _pki(pki, responder.url)
    signing = ours.municipality.signing.certificate
    responder.certs[signing.serial_number] = signing
    responder.revoked.add(signing.serial_number)
    async for client in _client(settings, ours, tmp_path, sessions):
        _assert_delivery_failure(ours, await post(client, epj_message(ours)))

        await _until_counted(client, "revoked")
        built = epj_message(ours)
        r = await post(client, built)
        reply = reply_of(ours, r)
        assert reply.header is not None
        assert reply.header.action == "MessageError"
    assert "SEC-CERT-REVOKED" in await _rules(sessions, built.body)


async def test_no_ocsp_answer_and_no_crl_is_a_temporary_failure(
    settings: Settings,
    pki: DevPki,
    responder: Responder,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ours = _pki(pki, responder.url)  # the responder does not know the certificate
    async for client in _client(settings, ours, tmp_path, sessions):
        _assert_delivery_failure(ours, await post(client, epj_message(ours)))

        await _until_counted(client, "failed")
        _assert_delivery_failure(ours, await post(client, epj_message(ours)))
    assert responder.asked == 1  # once per retry period


async def test_a_huge_ocsp_answer_is_cut_at_the_cap(
    settings: Settings,
    pki: DevPki,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A responder that streams 200 MB: read up to the cap (64 KiB), then dropped."""
    mib = 1024 * 1024
    with hostile_server({"/ocsp": Route(huge=200 * mib, announce=False)}) as server:
        ours = _pki(pki, server.url("/ocsp"))
        async for client in _client(settings, ours, tmp_path, sessions):
            _assert_delivery_failure(ours, await post(client, epj_message(ours)))

            await _until_counted(client, "failed")
        assert server.hits["/ocsp"] == 1
        assert server.finished["/ocsp"] == 0
        # written to the socket at most the cap plus what the kernel buffers, never 200 MB
        assert server.sent["/ocsp"] < 32 * mib
