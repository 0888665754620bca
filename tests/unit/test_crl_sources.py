"""CrlSources against a real HTTP server on loopback: what a fetch accepts, what it refuses
(another CA's CRL under the same name, an older CRL, garbage), and the states it reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from app.revocation.crls import CrlMetrics, CrlSources, CrlState
from app.security.devpki import DevPki, make_ca, make_crl, rsa_key
from tests.crlserver import CrlServer, crl_server

CRL = "ca.crl"
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def pki() -> DevPki:
    from app.security.devpki import dev_pki

    return dev_pki(dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CrlServer]:
    with crl_server(tmp_path / "www") as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def _sources(pki: DevPki, tmp_path: Path) -> CrlSources:
    return CrlSources(
        cache_dir=tmp_path / "cache",
        issuers=lambda: (pki.ca.certificate,),
        refresh=HOUR,
        retry=dt.timedelta(minutes=5),
        timeout=10.0,
        metrics=CrlMetrics(CollectorRegistry()),
    )


async def test_a_crl_signed_by_another_ca_of_the_same_name_is_refused(
    pki: DevPki, server: CrlServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    impostor = make_ca(now, key=rsa_key("impostor-ca"))  # same subject name, other key
    server.publish(CRL, make_crl(impostor, now))
    sources = _sources(pki, tmp_path)
    assert not await sources.fetch(server.url(CRL), client)
    assert sources.crls() == ()
    assert sources.report(now)[server.url(CRL)]["state"] == CrlState.MISSING.value


async def test_an_older_crl_or_garbage_never_displaces_the_last_good_one(
    pki: DevPki, server: CrlServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    good = make_crl(pki.ca, now)
    server.publish(CRL, good)
    sources = _sources(pki, tmp_path)
    assert await sources.fetch(server.url(CRL), client)
    server.publish(CRL, make_crl(pki.ca, now - dt.timedelta(days=1)))  # a replayed old one
    assert not await sources.fetch(server.url(CRL), client)
    (server.root / CRL).write_bytes(b"<html>maintenance</html>")
    assert not await sources.fetch(server.url(CRL), client)
    assert sources.crls() == (good,)
    src = sources.sources[server.url(CRL)]
    assert src.failures == 2
    assert src.last_error is not None


def test_states_follow_the_crl_and_the_last_attempt(pki: DevPki, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    sources = _sources(pki, tmp_path)
    sources.add_urls(["http://127.0.0.1:9/ca.crl"])
    src = sources.sources["http://127.0.0.1:9/ca.crl"]
    assert src.state(now, HOUR, HOUR) is CrlState.MISSING
    src.crl = make_crl(pki.ca, now, next_update=dt.timedelta(days=2))
    src.fetched_at = now
    assert src.state(now, HOUR, HOUR) is CrlState.OK
    later = now + dt.timedelta(days=1, hours=1)  # past halfway: a refresh was due
    src.last_attempt_at, src.last_error = later, "ConnectError"
    assert src.state(later, HOUR, HOUR) is CrlState.STALE
    assert src.state(now + dt.timedelta(days=3), HOUR, HOUR) is CrlState.EXPIRED
    # Refreshed halfway between thisUpdate and nextUpdate, or after `refresh` if sooner.
    src.last_attempt_at, src.last_error = now, None
    assert src.refresh_at(dt.timedelta(days=7), HOUR) <= now + dt.timedelta(days=1)
    assert src.refresh_at(HOUR, dt.timedelta(0)) >= now + HOUR


async def test_the_cache_on_disk_is_read_back_and_checked(
    pki: DevPki, server: CrlServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    server.publish(CRL, make_crl(pki.ca, now))
    first = _sources(pki, tmp_path)
    assert await first.fetch(server.url(CRL), client)
    again = _sources(pki, tmp_path)
    again.load_cache()
    assert len(again.crls()) == 1
    other = make_ca(now, name="Other CA", key=rsa_key("other-ca"))
    stranger = CrlSources(
        cache_dir=tmp_path / "cache",
        issuers=lambda: (other.certificate,),
        refresh=HOUR,
        retry=HOUR,
        timeout=10.0,
        metrics=CrlMetrics(CollectorRegistry()),
    )
    stranger.load_cache()  # a cached CRL no anchor vouches for is not used
    assert stranger.crls() == ()
