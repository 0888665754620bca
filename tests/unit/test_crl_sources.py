"""CrlSources against a real HTTP server on loopback: what a fetch accepts, what it refuses
(another CA's CRL under the same name, an older CRL, garbage, a huge or redirected answer),
the back-off (a CRL past nextUpdate is not fetched again within the retry period, by this
worker or another one), and the states it reports."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import CollectorRegistry

from app.dev.devpki import DevPki, make_ca, make_crl, rsa_key
from app.outbound import OutboundClient
from app.revocation.crls import CrlMetrics, CrlSources, CrlState, Outcome
from tests.crlserver import CrlServer, crl_server
from tests.hostileserver import Route, hostile_server

CRL = "ca.crl"
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def pki() -> DevPki:
    from app.dev.devpki import dev_pki

    return dev_pki(dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CrlServer]:
    with crl_server(tmp_path / "www") as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[OutboundClient]:
    outbound = OutboundClient(allow_private=True)  # the servers are on loopback
    yield outbound
    await outbound.aclose()


def _sources(
    pki: DevPki,
    tmp_path: Path,
    client: OutboundClient | None = None,
    *,
    retry: dt.timedelta = dt.timedelta(0),
    max_bytes: int = 1024 * 1024,
    cache: str = "cache",
) -> CrlSources:
    return CrlSources(
        cache_dir=tmp_path / cache,
        issuers=lambda: (pki.ca.certificate,),
        refresh=HOUR,
        retry=retry,
        timeout=10.0,
        metrics=CrlMetrics(CollectorRegistry()),
        outbound=client,
        max_bytes=max_bytes,
    )


async def test_a_crl_signed_by_another_ca_of_the_same_name_is_refused(
    pki: DevPki, server: CrlServer, client: OutboundClient, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    impostor = make_ca(now, key=rsa_key("impostor-ca"))  # same subject name, other key
    server.publish(CRL, make_crl(impostor, now))
    sources = _sources(pki, tmp_path, client)
    assert not await sources.fetch(server.url(CRL))
    assert sources.crls() == ()
    assert sources.report(now)[0]["state"] == CrlState.MISSING.value


async def test_an_older_crl_or_garbage_never_displaces_the_last_good_one(
    pki: DevPki, server: CrlServer, client: OutboundClient, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    good = make_crl(pki.ca, now)
    server.publish(CRL, good)
    sources = _sources(pki, tmp_path, client)
    assert await sources.fetch(server.url(CRL))
    server.publish(CRL, make_crl(pki.ca, now - dt.timedelta(days=1)))  # a replayed old one
    assert not await sources.fetch(server.url(CRL))
    src = sources.sources[server.url(CRL)]
    assert src.last_outcome is Outcome.UNCHANGED
    (server.root / CRL).write_bytes(b"<html>maintenance</html>")
    assert not await sources.fetch(server.url(CRL))
    assert sources.crls() == (good,)
    assert sources.sources[server.url(CRL)].last_outcome is Outcome.FAILED
    assert src.failures == 1
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
    pki: DevPki, server: CrlServer, client: OutboundClient, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    server.publish(CRL, make_crl(pki.ca, now))
    first = _sources(pki, tmp_path, client)
    assert await first.fetch(server.url(CRL))
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


async def test_a_crl_past_next_update_is_not_fetched_again_within_the_retry_period(
    pki: DevPki, client: OutboundClient, tmp_path: Path
) -> None:
    """The CA has not renewed its CRL: each round of the refresher would find it due (past
    halfway, past nextUpdate). One attempt per retry period, in this worker and the next."""
    now = dt.datetime.now(dt.UTC)
    expired = make_crl(pki.ca, now - dt.timedelta(days=2), next_update=dt.timedelta(days=1))
    with hostile_server({"/ca.crl": Route(body=expired.public_bytes(Encoding.DER))}) as server:
        url = server.url("/ca.crl")
        worker = _sources(pki, tmp_path, client, retry=HOUR)
        worker.add_urls([url])
        for _ in range(5):
            await worker.refresh_due()
        assert server.hits["/ca.crl"] == 1
        src = worker.sources[url]
        assert src.state(dt.datetime.now(dt.UTC), HOUR, HOUR) is CrlState.EXPIRED
        assert src.refresh_at(HOUR, HOUR) >= dt.datetime.now(dt.UTC) + dt.timedelta(minutes=59)
        # two hours on (the attempt back-dated here and in the shared state file): the same
        # CRL again is nothing newer, so the back-off holds after it too
        worker.sources[url].last_attempt_at = now - 2 * HOUR
        for state_file in (tmp_path / "cache").glob("*.state"):
            state_file.unlink()
        await worker.refresh_due()
        assert server.hits["/ca.crl"] == 2
        assert src.last_outcome is Outcome.UNCHANGED
        await worker.refresh_due()
        assert server.hits["/ca.crl"] == 2
        # another worker (same cache directory) learns the URL: it takes the shared back-off
        # and the CRL from the cache instead of asking the CA
        other = _sources(pki, tmp_path, client, retry=HOUR)
        other.add_urls([url])
        for _ in range(3):
            await other.refresh_due()
        assert server.hits["/ca.crl"] == 2
        assert other.crls() == (expired,)
        assert other.sources[url].last_outcome is Outcome.SHARED


async def test_one_fetch_per_url_at_a_time_across_workers(
    pki: DevPki, client: OutboundClient, tmp_path: Path
) -> None:
    """Two workers sharing the cache directory: while one fetches (a slow CA), the other does
    not ask as well."""
    crl = make_crl(pki.ca, dt.datetime.now(dt.UTC)).public_bytes(Encoding.DER)
    with hostile_server({"/ca.crl": Route(body=crl, trickle=0.001)}) as server:
        url = server.url("/ca.crl")
        first, second = (_sources(pki, tmp_path, client, retry=HOUR) for _ in range(2))
        first.add_urls([url])
        second.add_urls([url])
        running = asyncio.ensure_future(first.fetch(url))
        for _ in range(1000):  # until the first is at the CA
            if server.hits["/ca.crl"]:
                break
            await asyncio.sleep(0.01)
        assert not await second.fetch(url)
        assert second.sources[url].last_outcome is None  # busy: not even an attempt
        assert await running
        assert server.hits["/ca.crl"] == 1


async def test_a_huge_crl_is_cut_at_the_cap_and_a_redirect_not_followed(
    pki: DevPki, client: OutboundClient, tmp_path: Path
) -> None:
    mib = 1024 * 1024
    with hostile_server() as server:
        server.routes["/huge.crl"] = Route(huge=200 * mib, announce=False)
        server.routes["/announced.crl"] = Route(huge=200 * mib)
        server.routes["/moved.crl"] = Route(status=302, headers={"Location": "/huge.crl"})
        sources = _sources(pki, tmp_path, client, max_bytes=mib)
        for path in ("/huge.crl", "/announced.crl", "/moved.crl"):
            assert not await sources.fetch(server.url(path))
        errors = {p: sources.sources[server.url(p)].last_error or "" for p in server.routes}
        assert "too_large" in errors["/huge.crl"]
        assert "too_large" in errors["/announced.crl"]
        assert "redirect" in errors["/moved.crl"]
        assert server.hits["/huge.crl"] == 1  # not once more through the redirect
        # written to the socket at most the cap plus what the kernel buffers, never 200 MB
        assert server.sent["/huge.crl"] < 32 * mib
        assert server.finished["/huge.crl"] == server.finished["/announced.crl"] == 0
        assert sources.crls() == ()
