"""The one HTTP client for everything the service fetches from elsewhere or posts to (CRLs and
OCSP, the registries, asynchronous replies), so that nobody on the other end can stall or
flood it.

Every request has:
- one overall deadline (connect, headers and the whole body together: a server that trickles
  a byte a second cannot keep it for longer than that);
- a byte cap: the Content-Length is checked before any body byte is read, and the body is
  streamed and cut at the cap (a 200 MB answer never reaches memory);
- no redirects: a 3xx is an error (a redirect would let the other end point us anywhere);
- no compression: no Accept-Encoding is offered and the raw bytes are read, so nothing is
  inflated;
- a check of the address: the host is resolved once, loopback, private, link-local and other
  non-global addresses are refused unless allowed (`KPR_OUTBOUND_ALLOW_PRIVATE`), and the
  connection goes to an address checked (no second look-up that a DNS rebinding could answer);
- no proxy or certificate settings from the environment: TLS is verified against the public
  CA bundle and the CAs of `KPR_OUTBOUND_CA_FILE`.

Errors are `OutboundError`s whose text names neither the URL nor anything the server sent
back beyond its status code: the caller knows the URL and decides who may see it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import certifi
import httpx

from app.platform.logs import get_logger

log = get_logger(__name__)


class Failure(StrEnum):
    ADDRESS = "address"  # not http(s), unresolvable, or a refused address
    DEADLINE = "deadline"
    TOO_LARGE = "too_large"
    REDIRECT = "redirect"
    STATUS = "status"  # not 2xx
    ENCODING = "encoding"  # a Content-Encoding we did not ask for
    NETWORK = "network"


class OutboundError(Exception):
    def __init__(
        self, failure: Failure, detail: str, *, read: int = 0, status: int | None = None
    ) -> None:
        super().__init__(f"{failure.value}: {detail}")
        self.failure = failure
        self.read = read  # body bytes read before giving up
        self.status = status  # the HTTP status of a `status` or `redirect` failure


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    status: int
    headers: Mapping[str, str]
    content: bytes


def _allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


_CHUNK = 64 * 1024


def tls_trust(ca_file: Path | None) -> ssl.SSLContext:
    """Server certificates verified against the public CA bundle (certifi), plus the CAs in
    `ca_file` (KPR_OUTBOUND_CA_FILE: e.g. the CAs of the health network's endpoints)."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


class OutboundClient:
    def __init__(
        self,
        *,
        allow_private: bool,
        user_agent: str = "kpr-mottak",
        ca_file: Path | None = None,
    ) -> None:
        self.allow_private = allow_private
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            verify=tls_trust(ca_file),
            trust_env=False,  # no proxies, CA bundles or netrc from the environment
            headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
            # no connection kept: one to an address is not reused for another host name
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(
        self, url: str, *, max_bytes: int, deadline: float, accept: str = "*/*"
    ) -> OutboundResponse:
        return await self.request(
            "GET", url, max_bytes=max_bytes, deadline=deadline, headers={"Accept": accept}
        )

    async def post(
        self,
        url: str,
        content: bytes,
        *,
        content_type: str,
        max_bytes: int,
        deadline: float,
    ) -> OutboundResponse:
        headers = {"Content-Type": content_type}
        return await self.request(
            "POST", url, max_bytes=max_bytes, deadline=deadline, headers=headers, content=content
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        max_bytes: int,
        deadline: float,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        accept_status: frozenset[int] = frozenset(),
    ) -> OutboundResponse:
        """One request within `deadline` seconds in all; the body at most `max_bytes`. A
        status outside 2xx is an error unless in `accept_status` (a SOAP fault's 500, whose
        body says what went wrong)."""
        progress = [0]  # bytes read so far, for the error when the deadline cuts in
        try:
            async with asyncio.timeout(deadline):
                return await self._request(
                    method, url, max_bytes, headers, content, progress, accept_status
                )
        except TimeoutError:
            raise OutboundError(
                Failure.DEADLINE, f"no complete answer within {deadline:g} s", read=progress[0]
            ) from None

    async def _request(
        self,
        method: str,
        url: str,
        max_bytes: int,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        progress: list[int],
        accept_status: frozenset[int] = frozenset(),
    ) -> OutboundResponse:
        given, addresses = await self._resolved(url)
        extensions: dict[str, object] = {}
        if given.scheme == "https":
            extensions["sni_hostname"] = given.host  # the certificate is checked for the name
        failure: OutboundError | None = None
        # Each address checked, in the resolver's order, until one connects (what a client
        # that resolves by itself does); never one that was not checked.
        for address in addresses:
            request = self._client.build_request(
                method,
                given.copy_with(host=address),
                headers={**(headers or {}), "Host": given.netloc.decode("ascii")},
                content=content,
                extensions=extensions,
            )
            try:
                response = await self._client.send(request, stream=True)
            except httpx.ConnectError as exc:
                failure = OutboundError(Failure.NETWORK, type(exc).__name__)
                continue
            except httpx.HTTPError as exc:
                raise OutboundError(Failure.NETWORK, type(exc).__name__) from None
            try:
                return await self._read(response, max_bytes, progress, accept_status)
            finally:
                await response.aclose()
        assert failure is not None  # `addresses` is never empty
        raise failure

    async def _read(
        self,
        response: httpx.Response,
        max_bytes: int,
        progress: list[int],
        accept_status: frozenset[int] = frozenset(),
    ) -> OutboundResponse:
        status = response.status_code
        if 300 <= status < 400:
            raise OutboundError(
                Failure.REDIRECT, f"HTTP {status}: redirects are not followed", status=status
            )
        if not 200 <= status < 300 and status not in accept_status:
            raise OutboundError(Failure.STATUS, f"HTTP {status}", status=status)
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise OutboundError(Failure.ENCODING, "a compressed body was not asked for")
        declared = response.headers.get("Content-Length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > max_bytes):
            raise OutboundError(
                Failure.TOO_LARGE, f"Content-Length {declared[:20]} is over {max_bytes} bytes"
            )
        body = bytearray()
        try:
            async for chunk in response.aiter_raw(_CHUNK):
                body += chunk
                progress[0] = len(body)
                if len(body) > max_bytes:
                    raise OutboundError(
                        Failure.TOO_LARGE, f"the body is over {max_bytes} bytes", read=len(body)
                    )
        except httpx.HTTPError as exc:
            raise OutboundError(Failure.NETWORK, type(exc).__name__, read=len(body)) from None
        return OutboundResponse(status, dict(response.headers), bytes(body))

    async def _resolved(self, url: str) -> tuple[httpx.URL, list[str]]:
        """The URL and the addresses its host resolves to, every one of them checked."""
        try:
            given = httpx.URL(url)
        except httpx.InvalidURL:
            raise OutboundError(Failure.ADDRESS, "not a valid URL") from None
        if given.scheme not in ("http", "https") or not given.host:
            raise OutboundError(Failure.ADDRESS, "only http and https URLs are fetched")
        port = given.port or (443 if given.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                given.host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError):
            raise OutboundError(Failure.ADDRESS, "the host name does not resolve") from None
        found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not found:
            raise OutboundError(Failure.ADDRESS, "the host name does not resolve")
        # Every address the name has must be allowed: a name with one public and one private
        # address is refused, whichever a connection would have used.
        if not self.allow_private and not all(_allowed(a) for a in found):
            raise OutboundError(
                Failure.ADDRESS,
                "the host is a loopback, private or link-local address"
                " (KPR_OUTBOUND_ALLOW_PRIVATE allows it)",
            )
        return given, list(dict.fromkeys(str(a) for a in found))[:4]
