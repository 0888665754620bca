"""CRLs fetched from the certificates' distribution points by a running service, from a real
HTTP server on loopback: refreshed while it runs, cached on disk, stale before expired."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import devsetup
from app.main import create_app
from app.models import Finding, Message
from app.parties import repository as party_repo
from app.security.devpki import DevPki, make_crl, make_party, write_dev_pki
from app.settings import Settings
from tests.crlserver import CrlServer, crl_server
from tests.integration.messages import assert_signed_ok_reply, epj_message, post, reply_of

# revocation: no SQL that differs between the databases
pytestmark = pytest.mark.databases("sqlite")

CRL = "kpr-dev-ca.crl"
DEADLINE_SECONDS = 60.0


@pytest.fixture
def crls(tmp_path: Path) -> Iterator[CrlServer]:
    with crl_server(tmp_path / "www") as server:
        yield server


@pytest.fixture
def dp_pki(pki: DevPki, crls: CrlServer) -> DevPki:
    """The dev PKI, with municipality certificates that name the server's CRL."""
    now = datetime.now(UTC).replace(microsecond=0)
    party = make_party(pki.ca, "Demo kommune", pki.municipality.orgnr, now, crl_url=crls.url(CRL))
    return replace(pki, municipality=party)


@pytest.fixture
async def crl_settings(
    settings: Settings,
    dp_pki: DevPki,
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],
) -> Settings:
    write_dev_pki(settings.pki_dir, dp_pki)
    (tmp_path / "no-static-crls").mkdir()
    async with sessions() as s:
        await party_repo.upsert_party(s, devsetup.demo_party(settings.pki_dir))
        await s.commit()
    return settings.model_copy(
        update={
            "crl_dir": tmp_path / "no-static-crls",  # only what is fetched counts
            "crl_cache_dir": tmp_path / "crl-cache",
            "crl_refresh_seconds": 1,
            "crl_retry_seconds": 1,
        }
    )


@pytest.fixture
async def running(crl_settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with _running(crl_settings) as pair:
        yield pair


class _running:
    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self._lifespan = self.app.router.lifespan_context(self.app)
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://kpr.test"
        )

    async def __aenter__(self) -> tuple[FastAPI, httpx.AsyncClient]:
        await self._lifespan.__aenter__()
        return self.app, self._client

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()
        await self._lifespan.__aexit__(None, None, None)


async def _metric(client: httpx.AsyncClient, name: str, url: str) -> float | None:
    text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("url") == url:
                return float(sample.value)
    return None


async def _until(what: str, check: object) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"not within {DEADLINE_SECONDS} s: {what}")


async def _rules(sessions: async_sessionmaker[AsyncSession], body: bytes) -> list[str]:
    digest = hashlib.sha256(body).hexdigest()
    async with sessions() as s:
        message = (await s.scalars(select(Message).where(Message.sha256 == digest))).one()
        rules = select(Finding.rule_id).where(Finding.message_id == message.id)
        return list(await s.scalars(rules))


async def test_a_refreshed_crl_that_revokes_the_sender_refuses_its_next_message(
    crls: CrlServer,
    dp_pki: DevPki,
    running: tuple[FastAPI, httpx.AsyncClient],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    crls.publish(CRL, make_crl(dp_pki.ca, now - timedelta(minutes=10)))
    _app, client = running

    first = epj_message(dp_pki)
    r = await post(client, first)
    assert_signed_ok_reply(reply_of(dp_pki, r), first.message_id)

    revoking = make_crl(
        dp_pki.ca, now, revoked_serials=(dp_pki.municipality.signing.certificate.serial_number,)
    )
    crls.publish(CRL, revoking)
    wanted = revoking.last_update_utc.timestamp()

    async def refreshed() -> bool:
        seen = await _metric(client, "kpr_crl_last_update_timestamp_seconds", crls.url(CRL))
        return seen == wanted

    await _until("the revoking CRL is fetched", refreshed)
    second = epj_message(dp_pki)
    r = await post(client, second)
    assert r.status_code == 200
    reply = reply_of(dp_pki, r)
    assert reply.header is not None
    assert reply.header.action == "MessageError"
    assert "SEC-CERT-REVOKED" in await _rules(sessions, second.body)


async def test_a_crl_that_cannot_be_refreshed_is_stale_before_it_expires_and_still_used(
    crls: CrlServer,
    dp_pki: DevPki,
    crl_settings: Settings,
) -> None:
    crls.publish(CRL, make_crl(dp_pki.ca, datetime.now(UTC)))
    url = crls.url(CRL)
    async with _running(crl_settings) as (_app, client):

        async def fetched() -> bool:
            body = (await client.get("/readyz")).json()
            return bool(body["crls"].get(url, {}).get("state") == "ok")

        await _until("the CRL is fetched", fetched)
        crls.withdraw(CRL)  # the CA's server now answers 404

        async def stale() -> bool:
            body = (await client.get("/readyz")).json()
            return bool(body["crls"][url]["state"] == "stale")

        await _until("the CRL shows as stale", stale)
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["crl"] == "degraded"
        assert datetime.fromisoformat(ready.json()["crls"][url]["next_update"]) > datetime.now(UTC)
        assert await _metric(client, "kpr_crl_stale", url) == 1.0
        failures = await _metric(client, "kpr_crl_fetch_failures_total", url)
        assert failures is not None
        assert failures >= 1

        built = epj_message(dp_pki)  # the last good CRL still answers
        r = await post(client, built)
        assert_signed_ok_reply(reply_of(dp_pki, r), built.message_id)


async def test_the_crl_cache_on_disk_answers_after_a_restart_while_the_ca_is_down(
    crls: CrlServer,
    dp_pki: DevPki,
    crl_settings: Settings,
) -> None:
    crls.publish(CRL, make_crl(dp_pki.ca, datetime.now(UTC)))
    url = crls.url(CRL)
    async with _running(crl_settings) as (_app, client):

        async def fetched() -> bool:
            return await _metric(client, "kpr_crl_last_success_timestamp_seconds", url) is not None

        await _until("the CRL is fetched", fetched)
    crls.withdraw(CRL)
    async with _running(crl_settings) as (_app, client):
        built = epj_message(dp_pki)
        r = await post(client, built)
        assert_signed_ok_reply(reply_of(dp_pki, r), built.message_id)


async def test_a_signer_whose_crl_is_not_known_yet_is_checked_against_a_fetched_one(
    crls: CrlServer,
    dp_pki: DevPki,
    crl_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The registry learns nothing at start (the party is registered later): the message's
    own signer names the distribution point, which is fetched while the message waits."""
    async with sessions() as s:
        for party in await party_repo.list_parties(s):
            await s.delete(party)
        await s.commit()
    crls.publish(
        CRL,
        make_crl(
            dp_pki.ca,
            datetime.now(UTC),
            revoked_serials=(dp_pki.municipality.signing.certificate.serial_number,),
        ),
    )
    async with _running(crl_settings) as (_app, client):
        async with sessions() as s:
            await party_repo.upsert_party(s, devsetup.demo_party(crl_settings.pki_dir))
            await s.commit()
        built = epj_message(dp_pki)
        r = await post(client, built)
        assert r.status_code == 200
        reply = reply_of(dp_pki, r)
        assert reply.header is not None
        assert reply.header.action == "MessageError"
    assert "SEC-CERT-REVOKED" in await _rules(sessions, built.body)
