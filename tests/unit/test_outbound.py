"""The one outbound HTTP client against a real, misbehaving server on loopback: an overall
deadline (a trickle cannot hold it), a byte cap (Content-Length first, then the stream cut),
no redirects, no compression, no proxy from the environment, private addresses only when
allowed. Assertions are on the error and the bytes read, never on time."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Iterator

import pytest

from app.outbound import Failure, OutboundClient, OutboundError, _allowed
from tests.hostileserver import HostileServer, Route, hostile_server

MIB = 1024 * 1024


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with hostile_server() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[OutboundClient]:
    outbound = OutboundClient(allow_private=True)  # the server is on loopback
    yield outbound
    await outbound.aclose()


async def test_a_trickling_server_is_cut_at_the_overall_deadline(
    server: HostileServer, client: OutboundClient
) -> None:
    # A byte every 0.3 s never trips a per-read timeout (httpx's is 5 s): only a deadline
    # over the whole request ends it.
    server.routes["/slow"] = Route(body=b"x" * 1000, trickle=0.3)
    with pytest.raises(OutboundError) as caught:
        await client.get(server.url("/slow"), max_bytes=MIB, deadline=1.5)
    assert caught.value.failure is Failure.DEADLINE
    assert caught.value.read < 1000
    assert server.finished["/slow"] == 0


async def test_an_announced_huge_body_is_refused_before_a_byte_is_read(
    server: HostileServer, client: OutboundClient
) -> None:
    server.routes["/huge"] = Route(huge=200 * MIB)
    with pytest.raises(OutboundError) as caught:
        await client.get(server.url("/huge"), max_bytes=MIB, deadline=30)
    assert caught.value.failure is Failure.TOO_LARGE
    assert caught.value.read == 0
    assert "Content-Length" in str(caught.value)


async def test_an_unannounced_huge_body_is_cut_at_the_cap(
    server: HostileServer, client: OutboundClient
) -> None:
    server.routes["/huge"] = Route(huge=200 * MIB, announce=False)
    with pytest.raises(OutboundError) as caught:
        await client.get(server.url("/huge"), max_bytes=MIB, deadline=60)
    assert caught.value.failure is Failure.TOO_LARGE
    assert MIB < caught.value.read <= MIB + 64 * 1024
    assert server.finished["/huge"] == 0


async def test_a_redirect_is_not_followed(server: HostileServer, client: OutboundClient) -> None:
    server.routes["/target"] = Route(body=b"secret")
    for status in (301, 302, 303, 307, 308):
        server.routes["/moved"] = Route(status=status, headers={"Location": "/target"})
        with pytest.raises(OutboundError) as caught:
            await client.get(server.url("/moved"), max_bytes=MIB, deadline=10)
        assert caught.value.failure is Failure.REDIRECT
    assert server.hits["/target"] == 0


async def test_an_error_status_says_the_status_and_not_the_url(
    server: HostileServer, client: OutboundClient
) -> None:
    with pytest.raises(OutboundError) as caught:
        await client.get(server.url("/internal-admin?token=x"), max_bytes=MIB, deadline=10)
    assert caught.value.failure is Failure.STATUS
    assert "404" in str(caught.value)
    assert "internal-admin" not in str(caught.value)
    assert "127.0.0.1" not in str(caught.value)


async def test_no_compression_is_asked_for_and_none_is_inflated(
    server: HostileServer, client: OutboundClient
) -> None:
    server.routes["/plain"] = Route(body=b"hello")
    response = await client.get(server.url("/plain"), max_bytes=MIB, deadline=10)
    assert response.content == b"hello"
    assert server.request_headers[-1].get("accept-encoding") == "identity"
    server.routes["/gz"] = Route(body=b"\x1f\x8b\x08\x00", headers={"Content-Encoding": "gzip"})
    with pytest.raises(OutboundError) as caught:
        await client.get(server.url("/gz"), max_bytes=MIB, deadline=10)
    assert caught.value.failure is Failure.ENCODING


async def test_a_post_reads_at_most_the_cap(server: HostileServer, client: OutboundClient) -> None:
    server.routes["/ocsp"] = Route(huge=200 * MIB, announce=False)
    with pytest.raises(OutboundError) as caught:
        await client.post(
            server.url("/ocsp"),
            b"question",
            content_type="application/ocsp-request",
            max_bytes=64 * 1024,
            deadline=60,
        )
    assert caught.value.failure is Failure.TOO_LARGE
    assert caught.value.read <= 2 * 64 * 1024


async def test_a_proxy_in_the_environment_is_not_used(
    server: HostileServer, client: OutboundClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    fresh = OutboundClient(allow_private=True)
    try:
        server.routes["/plain"] = Route(body=b"direct")
        response = await fresh.get(server.url("/plain"), max_bytes=MIB, deadline=10)
    finally:
        await fresh.aclose()
    assert response.content == b"direct"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
async def test_loopback_is_refused_unless_allowed(server: HostileServer, host: str) -> None:
    server.routes["/plain"] = Route(body=b"x")
    port = server.base_url.rsplit(":", 1)[1]
    strict = OutboundClient(allow_private=False)
    try:
        with pytest.raises(OutboundError) as caught:
            await strict.get(f"http://{host}:{port}/plain", max_bytes=MIB, deadline=10)
    finally:
        await strict.aclose()
    assert caught.value.failure is Failure.ADDRESS
    assert server.hits["/plain"] == 0


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False),
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
    ],
)
def test_which_addresses_count_as_private(address: str, allowed: bool) -> None:
    assert _allowed(ipaddress.ip_address(address)) is allowed


async def test_a_url_that_is_not_http_is_refused(client: OutboundClient) -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/x", "not a url"):
        with pytest.raises(OutboundError) as caught:
            await client.get(url, max_bytes=MIB, deadline=10)
        assert caught.value.failure is Failure.ADDRESS


async def test_a_name_is_fetched_at_its_checked_address_with_its_own_host_header(
    server: HostileServer, client: OutboundClient
) -> None:
    """The connection goes to the address resolved and checked; the server still sees the
    name (and `localhost` resolving to ::1 first, where the server listens on 127.0.0.1
    only, still connects: each checked address is tried)."""
    server.routes["/plain"] = Route(body=b"found")
    port = server.base_url.rsplit(":", 1)[1]
    response = await client.get(f"http://localhost:{port}/plain", max_bytes=MIB, deadline=10)
    assert response.content == b"found"
    assert server.request_headers[-1]["host"] == f"localhost:{port}"
