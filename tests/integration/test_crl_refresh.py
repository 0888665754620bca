"""CRLs fetched from the certificates' distribution points by a running service, from a real
HTTP server on loopback: refreshed while it runs, cached on disk, stale before expired; the
details (URL, error) only for operators at /api/v1/revocation, counts on /readyz and /metrics."""

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

from app.dev import devsetup
from app.dev.devpki import DevPki, make_crl, make_party, write_dev_pki
from app.main import create_app
from app.models import Finding, Message
from app.parties import repository as party_repo
from app.platform.settings import Settings
from tests.crlserver import CrlServer, crl_server
from tests.integration.messages import assert_signed_ok_reply, epj_message, post, reply_of
from tests.integration.seed import auth, token

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
            "outbound_allow_private": True,  # the CA's server is on loopback
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


async def _metric(client: httpx.AsyncClient, name: str, **labels: str) -> float | None:
    text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


async def _source(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], url: str
) -> dict[str, object]:
    """The operator's view of one distribution point ({} when it is not known)."""
    headers = auth(await token(sessions, f"ops-{time.monotonic_ns()}", "operator"))
    r = await client.get("/api/v1/revocation", headers=headers)
    assert r.status_code == 200
    found = [s for s in r.json()["crl_sources"] if s["url"] == url]
    return dict(found[0]) if found else {}


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
        seen = (await _source(client, sessions, crls.url(CRL))).get("this_update")
        return seen is not None and datetime.fromisoformat(str(seen)).timestamp() == wanted

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
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    crls.publish(CRL, make_crl(dp_pki.ca, datetime.now(UTC)))
    url = crls.url(CRL)
    async with _running(crl_settings) as (_app, client):

        async def fetched() -> bool:
            return (await _source(client, sessions, url)).get("state") == "ok"

        await _until("the CRL is fetched", fetched)
        crls.withdraw(CRL)  # the CA's server now answers 404

        async def stale() -> bool:
            return (await _source(client, sessions, url)).get("state") == "stale"

        await _until("the CRL shows as stale", stale)
        source = await _source(client, sessions, url)
        assert "404" in str(source["last_error"])
        assert datetime.fromisoformat(str(source["next_update"])) > datetime.now(UTC)
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["crl"] == "degraded"
        assert ready.json()["crls"] == {"ok": 0, "stale": 1, "expired": 0, "missing": 0}
        assert await _metric(client, "kpr_crl_sources", state="stale") == 1.0
        failures = await _metric(client, "kpr_crl_fetches_total", outcome="failed")
        assert failures is not None
        assert failures >= 1
        # nothing of the URL or the error on the unauthenticated endpoints
        port = url.split(":")[2].split("/")[0]
        for public in ("/readyz", "/metrics"):
            text = (await client.get(public)).text
            assert port not in text
            assert CRL not in text
        assert "404" not in (await client.get("/readyz")).text

        built = epj_message(dp_pki)  # the last good CRL still answers
        r = await post(client, built)
        assert_signed_ok_reply(reply_of(dp_pki, r), built.message_id)


async def test_the_crl_cache_on_disk_answers_after_a_restart_while_the_ca_is_down(
    crls: CrlServer,
    dp_pki: DevPki,
    crl_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    crls.publish(CRL, make_crl(dp_pki.ca, datetime.now(UTC)))
    url = crls.url(CRL)
    async with _running(crl_settings) as (_app, client):

        async def fetched() -> bool:
            return (await _source(client, sessions, url)).get("fetched_at") is not None

        await _until("the CRL is fetched", fetched)
    crls.withdraw(CRL)
    async with _running(crl_settings) as (_app, client):
        built = epj_message(dp_pki)
        r = await post(client, built)
        assert_signed_ok_reply(reply_of(dp_pki, r), built.message_id)


async def test_a_signer_whose_crl_is_not_known_yet_gets_a_temporary_failure_at_once(
    crls: CrlServer,
    dp_pki: DevPki,
    crl_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The registry learns nothing at start (the party is registered later): the message's
    own signer (chained to the anchor) names the distribution point. The message is not held
    while it is fetched: it gets the temporary DeliveryFailure, and the resend after the
    refresher has fetched is checked against the CRL."""
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
        first = epj_message(dp_pki)
        r = await post(client, first)
        reply = reply_of(dp_pki, r)
        assert reply.header is not None
        assert [(e.error_code, e.severity) for e in reply.header.errors] == [
            ("DeliveryFailure", "Warning")
        ]

        async def fetched() -> bool:
            return (await _source(client, sessions, crls.url(CRL))).get("state") == "ok"

        await _until("the refresher fetches the signer's CRL", fetched)
        built = epj_message(dp_pki)
        r = await post(client, built)
        assert r.status_code == 200
        reply = reply_of(dp_pki, r)
        assert reply.header is not None
        assert reply.header.action == "MessageError"
    assert "SEC-CERT-REVOKED" in await _rules(sessions, built.body)
