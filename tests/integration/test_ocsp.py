"""OCSP where the certificate names a responder and no CRL decides: a real responder on
loopback says good (accepted), revoked (refused), or nothing (temporary DeliveryFailure)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import devsetup
from app.main import create_app
from app.models import Finding, Message
from app.parties import repository as party_repo
from app.security.devpki import DevPki, make_party, write_dev_pki
from app.settings import Settings
from tests.integration.messages import assert_signed_ok_reply, epj_message, post, reply_of
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
            update={"crl_dir": tmp_path / "no-crls", "crl_cache_dir": tmp_path / "cache"}
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
        built = epj_message(ours)
        r = await post(client, built)
        reply = reply_of(ours, r)
        assert reply.header is not None
        assert [(e.error_code, e.severity) for e in reply.header.errors] == [
            ("DeliveryFailure", "Warning")
        ]
    assert responder.asked == 1
