"""Issue 20's revocation attacks against a running service, each with a real hostile HTTP
server on loopback: a distribution point that trickles cannot hold messages (nor their intake
slots), a CRL that the CA does not renew is not fetched again within the retry period, a URL
in a certificate that chains to no trust anchor is never fetched, and the unauthenticated
endpoints show no URL. Assertions are on what the server saw and what the service answered,
not on time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev import devsetup
from app.dev.devpki import DevPki, make_ca, make_crl, make_party, rsa_key, write_dev_pki
from app.main import create_app
from app.parties import repository as party_repo
from app.platform.settings import Settings
from app.security.keys import KeyPair
from tests.hostileserver import HostileServer, Route, hostile_server
from tests.integration.messages import epj_message, post, reply_of
from tests.integration.seed import auth, token

# revocation: no SQL that differs between the databases
pytestmark = pytest.mark.databases("sqlite")

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def hostile() -> AsyncIterator[HostileServer]:
    with hostile_server() as server:
        yield server


async def _setup(
    settings: Settings, pki: DevPki, sessions: Sessions, tmp_path: Path, **update: object
) -> Settings:
    """The demo municipality registered with `pki`'s certificates; only fetched CRLs count."""
    write_dev_pki(settings.pki_dir, pki)
    (tmp_path / "no-static-crls").mkdir(exist_ok=True)
    async with sessions() as s:
        await party_repo.upsert_party(s, devsetup.demo_party(settings.pki_dir))
        await s.commit()
    return settings.model_copy(
        update={
            "crl_dir": tmp_path / "no-static-crls",
            "crl_cache_dir": tmp_path / "crl-cache",
            "outbound_allow_private": True,  # the hostile server is on loopback
            **update,
        }
    )


async def _started(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
            yield app, c


async def _until_source(
    client: httpx.AsyncClient, sessions: Sessions, field: str, value: object
) -> None:
    """Until the one distribution point known shows `value` in `field`."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = await _sources(client, sessions)
        if found and found[0][field] == value:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"the distribution point's {field} is not {value} within 60 s")


async def _sources(client: httpx.AsyncClient, sessions: Sessions) -> list[dict[str, object]]:
    headers = auth(await token(sessions, f"ops-{time.monotonic_ns()}", "operator"))
    r = await client.get("/api/v1/revocation", headers=headers)
    assert r.status_code == 200
    return list(r.json()["crl_sources"])


def _delivery_failure(pki: DevPki, r: httpx.Response) -> bool:
    reply = reply_of(pki, r)
    assert reply.header is not None
    return [(e.error_code, e.severity) for e in reply.header.errors] == [
        ("DeliveryFailure", "Warning")
    ]


def _party(pki: DevPki, url: str, ca: KeyPair | None = None) -> DevPki:
    now = datetime.now(UTC).replace(microsecond=0)
    issuer = pki.ca if ca is None else ca
    party = make_party(issuer, "Demo kommune", pki.municipality.orgnr, now, crl_url=url)
    return replace(pki, municipality=party)


async def test_a_trickling_distribution_point_cannot_hold_messages(
    settings: Settings,
    pki: DevPki,
    sessions: Sessions,
    tmp_path: Path,
    hostile: HostileServer,
) -> None:
    """1 byte every 2 s, 2 intake slots, 3 messages: all three are answered (the temporary
    DeliveryFailure: no CRL yet) while the fetch is still running. The fetch deadline is far
    beyond the test's own limit, so a message that waited for it would never be answered."""
    crl = make_crl(pki.ca, datetime.now(UTC)).public_bytes(Encoding.DER)
    hostile.routes["/ca.crl"] = Route(body=crl, trickle=2.0)
    ours = _party(pki, hostile.url("/ca.crl"))
    configured = await _setup(
        settings,
        ours,
        sessions,
        tmp_path,
        max_concurrent_messages=2,
        crl_fetch_timeout_seconds=3600,
    )
    async for app, client in _started(configured):
        state = app.state.kpr
        assert state.outbound is not None
        assert state.revocation is not None
        assert state.revocation.outbound is state.outbound  # the one outbound client
        await _until_source(client, sessions, "fetching", True)
        for _ in range(600):  # the refresher is at the distribution point
            if hostile.active["/ca.crl"] == 1:
                break
            await asyncio.sleep(0.1)
        assert hostile.active["/ca.crl"] == 1
        replies = await asyncio.wait_for(
            asyncio.gather(*(post(client, epj_message(ours)) for _ in range(3))), timeout=60
        )
        assert [_delivery_failure(ours, r) for r in replies] == [True, True, True]
        # the fetch is still under way: nothing the messages got waited for it
        assert hostile.active["/ca.crl"] == 1
        assert hostile.finished["/ca.crl"] == 0
        (source,) = await _sources(client, sessions)
        assert source["fetching"] is True
        assert source["state"] == "missing"
        # the public endpoints count, and name no URL
        ready = (await client.get("/readyz")).json()
        assert ready["crls"] == {"ok": 0, "stale": 0, "expired": 0, "missing": 1}
        port = hostile.base_url.rsplit(":", 1)[1]
        for public in ("/readyz", "/metrics"):
            text = (await client.get(public)).text
            assert port not in text
            assert "ca.crl" not in text
    # the service stopped: the fetch under way was cancelled, not left running
    assert hostile.finished["/ca.crl"] == 0
    for _ in range(300):  # the server notices at its next byte or two
        if hostile.active["/ca.crl"] == 0:
            break
        await asyncio.sleep(0.05)
    assert hostile.active["/ca.crl"] == 0


async def test_a_trickling_distribution_point_is_cut_at_the_fetch_deadline(
    settings: Settings,
    pki: DevPki,
    sessions: Sessions,
    tmp_path: Path,
    hostile: HostileServer,
) -> None:
    """A byte every 2 s never trips a per-read timeout of 3 s; the overall deadline ends it,
    and the operator sees why."""
    crl = make_crl(pki.ca, datetime.now(UTC)).public_bytes(Encoding.DER)
    hostile.routes["/ca.crl"] = Route(body=crl, trickle=2.0)
    ours = _party(pki, hostile.url("/ca.crl"))
    configured = await _setup(settings, ours, sessions, tmp_path, crl_fetch_timeout_seconds=3)
    async for _app, client in _started(configured):
        await _until_source(client, sessions, "last_outcome", "failed")
        (source,) = await _sources(client, sessions)
        assert "deadline" in str(source["last_error"])
        assert source["url"] == hostile.url("/ca.crl")
        assert hostile.finished["/ca.crl"] == 0


async def test_a_crl_the_ca_does_not_renew_is_not_fetched_again_within_the_retry_period(
    settings: Settings,
    pki: DevPki,
    sessions: Sessions,
    tmp_path: Path,
    hostile: HostileServer,
) -> None:
    """The newest CRL at the distribution point is past its nextUpdate: the refresher, which
    wakes every 0.5 s at the least, asks once and then waits KPR_CRL_RETRY_SECONDS."""
    now = datetime.now(UTC)
    expired = make_crl(pki.ca, now - timedelta(days=2), next_update=timedelta(days=1))
    hostile.routes["/ca.crl"] = Route(body=expired.public_bytes(Encoding.DER))
    ours = _party(pki, hostile.url("/ca.crl"))
    configured = await _setup(
        settings, ours, sessions, tmp_path, crl_refresh_seconds=1, crl_retry_seconds=300
    )
    async for _app, client in _started(configured):
        await _until_source(client, sessions, "state", "expired")
        await asyncio.sleep(2.5)  # five rounds of the refresher at its quickest
        assert hostile.hits["/ca.crl"] == 1
        (source,) = await _sources(client, sessions)
        next_attempt = datetime.fromisoformat(str(source["next_attempt_at"]))
        assert next_attempt > datetime.now(UTC) + timedelta(minutes=4)
        # a message from that CA gets the temporary failure and does not bring a fetch on
        assert _delivery_failure(ours, await post(client, epj_message(ours)))
        assert hostile.hits["/ca.crl"] == 1


async def test_a_url_in_a_certificate_that_chains_to_no_anchor_is_never_fetched(
    settings: Settings,
    pki: DevPki,
    sessions: Sessions,
    tmp_path: Path,
    hostile: HostileServer,
) -> None:
    """A party registered (as an AR/CPA import could) with certificates from a CA that is no
    trust anchor, naming an internal address: not at start-up, not when it sends."""
    now = datetime.now(UTC)
    stranger = make_ca(now, name="Stranger CA", key=rsa_key("stranger-ca"))
    hostile.routes["/internal-admin"] = Route(body=b"secret")
    ours = _party(pki, hostile.url("/internal-admin?token=x"), ca=stranger)
    configured = await _setup(settings, ours, sessions, tmp_path, crl_refresh_seconds=1)
    async for _app, client in _started(configured):
        assert await _sources(client, sessions) == []
        # pinned (registered) but unchained: its revocation status is unknown, temporarily
        assert _delivery_failure(ours, await post(client, epj_message(ours)))
        assert await _sources(client, sessions) == []
        assert "internal-admin" not in (await client.get("/readyz")).text
    assert sum(hostile.hits.values()) == 0
