"""CRLs from the distribution points the certificates name, cached on disk, kept current.

Each URL is a `CrlSource`. A fetched CRL replaces the one held only when it parses, is signed
by a trust anchor (or configured intermediate) of the same name and is not older than the one
held: a broken or replayed download never displaces the last good CRL, which is used until its
nextUpdate. A CRL is refreshed halfway between its thisUpdate and nextUpdate (and at least every
`refresh`), so a CA that is down for a while is noticed long before its CRL expires: the source
is then `stale` in `/readyz` and `/metrics`, and only after nextUpdate `expired` (messages from
that issuer then get the temporary DeliveryFailure, as DOMAIN 2.2 says).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import CollectorRegistry, Counter, Gauge

from app.logging import get_logger
from app.revocation.ocsp import OcspAnswers

log = get_logger(__name__)

# A CRL larger than this is not a CRL we want to parse on the event loop's behalf.
MAX_CRL_BYTES = 32 * 1024 * 1024


class CrlState(StrEnum):
    OK = "ok"
    STALE = "stale"  # a refresh is due and has failed: still usable until nextUpdate
    EXPIRED = "expired"  # past nextUpdate and no newer one: messages get DeliveryFailure
    MISSING = "missing"  # never fetched


@dataclass
class CrlSource:
    url: str
    crl: x509.CertificateRevocationList | None = None
    fetched_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_error: str | None = None
    failures: int = 0

    def refresh_at(self, refresh: timedelta, retry: timedelta) -> datetime:
        """When this source should next be fetched."""
        if self.crl is None or self.fetched_at is None:
            if self.last_attempt_at is None:
                return datetime.min.replace(tzinfo=UTC)
            return self.last_attempt_at + retry
        due = self.fetched_at + refresh
        next_update = self.crl.next_update_utc
        if next_update is not None:
            last = self.crl.last_update_utc
            due = min(due, last + (next_update - last) / 2)
        if self.last_error is not None and self.last_attempt_at is not None:
            due = max(due, self.last_attempt_at + retry)
        return due

    def state(self, now: datetime, refresh: timedelta, retry: timedelta) -> CrlState:
        if self.crl is None:
            return CrlState.MISSING
        next_update = self.crl.next_update_utc
        if next_update is not None and next_update < now:
            return CrlState.EXPIRED
        if self.last_error is not None and now >= self.refresh_at(refresh, timedelta(0)):
            return CrlState.STALE
        return CrlState.OK


def distribution_points(cert: x509.Certificate) -> list[str]:
    """The http(s) URLs of the certificate's CRL distribution points."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, ValueError):  # ValueError: unparsable extensions
        return []
    urls: list[str] = []
    for point in ext:
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.startswith(
                ("http://", "https://")
            ):
                urls.append(name.value)
    return urls


def parse_crl(data: bytes) -> x509.CertificateRevocationList:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


class CrlMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.next_update = Gauge(
            "kpr_crl_next_update_timestamp_seconds",
            "nextUpdate of the CRL held per distribution point (Unix time)",
            ["url"],
            registry=registry,
        )
        self.last_update = Gauge(
            "kpr_crl_last_update_timestamp_seconds",
            "thisUpdate of the CRL held per distribution point (Unix time)",
            ["url"],
            registry=registry,
        )
        self.last_success = Gauge(
            "kpr_crl_last_success_timestamp_seconds",
            "When the CRL was last fetched and accepted (Unix time)",
            ["url"],
            registry=registry,
        )
        self.stale = Gauge(
            "kpr_crl_stale",
            "1 when the CRL cannot be refreshed although due, is expired or missing",
            ["url"],
            registry=registry,
        )
        self.failures = Counter(
            "kpr_crl_fetch_failures_total",
            "Failed CRL fetches per distribution point",
            ["url"],
            registry=registry,
        )


class CrlSources:
    """The CRLs held, by URL, with their fetch state and the on-disk cache."""

    def __init__(
        self,
        *,
        cache_dir: Path,
        issuers: Callable[[], Iterable[x509.Certificate]],
        refresh: timedelta,
        retry: timedelta,
        timeout: float,
        metrics: CrlMetrics,
    ) -> None:
        self.cache_dir = cache_dir
        self.issuers = issuers  # the current trust anchors: a reload changes them
        self.refresh = refresh
        self.retry = retry
        self.timeout = timeout
        self.metrics = metrics
        self.sources: dict[str, CrlSource] = {}
        self.wake = asyncio.Event()
        self.client: httpx.AsyncClient | None = None  # set while the refresher runs
        self.ocsp = OcspAnswers(timeout=timeout, retry=retry)  # where no current CRL decides
        self._fetching: dict[str, asyncio.Task[bool]] = {}

    # --- what is held -------------------------------------------------------------------

    def crls(self) -> tuple[x509.CertificateRevocationList, ...]:
        return tuple(s.crl for s in self.sources.values() if s.crl is not None)

    def add_urls(self, urls: Iterable[str]) -> list[str]:
        """Register distribution points; returns those not known before."""
        new = [u for u in dict.fromkeys(urls) if u not in self.sources]
        for url in new:
            self.sources[url] = CrlSource(url)
        if new:
            self.wake.set()
        return new

    def report(self, now: datetime) -> dict[str, dict[str, str | None]]:
        """Per URL: state, nextUpdate and the last error, for /readyz."""
        out: dict[str, dict[str, str | None]] = {}
        for url, src in sorted(self.sources.items()):
            next_update = src.crl.next_update_utc if src.crl is not None else None
            out[url] = {
                "state": src.state(now, self.refresh, self.retry).value,
                "next_update": next_update.isoformat() if next_update else None,
                "last_error": src.last_error,
            }
        return out

    def export_metrics(self, now: datetime) -> None:
        for url, src in self.sources.items():
            state = src.state(now, self.refresh, self.retry)
            self.metrics.stale.labels(url).set(0 if state is CrlState.OK else 1)
            if src.crl is not None:
                self.metrics.last_update.labels(url).set(src.crl.last_update_utc.timestamp())
                if src.crl.next_update_utc is not None:
                    self.metrics.next_update.labels(url).set(src.crl.next_update_utc.timestamp())
            if src.fetched_at is not None:
                self.metrics.last_success.labels(url).set(src.fetched_at.timestamp())

    # --- the disk cache -----------------------------------------------------------------

    def _cache_path(self, url: str) -> Path:
        return self.cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:32]}.crl"

    def load_cache(self) -> None:
        """Read the CRLs fetched before a restart (each beside a `.url` file naming it)."""
        if not self.cache_dir.is_dir():
            return
        for url_file in sorted(self.cache_dir.glob("*.url")):
            try:
                url = url_file.read_text().strip()
                crl = parse_crl(url_file.with_suffix(".crl").read_bytes())
            except (OSError, ValueError) as exc:
                log.warning("crl.cache_unreadable", file=url_file.name, error=str(exc)[:200])
                continue
            if not self._verified(crl):
                log.warning("crl.cache_unverified", url=url)
                continue
            src = self.sources.setdefault(url, CrlSource(url))
            src.crl = crl
            # Treated as fetched when it was issued: the refresh schedule follows the CRL.
            src.fetched_at = crl.last_update_utc
        log.info("crl.cache_loaded", count=sum(1 for s in self.sources.values() if s.crl))

    def _store(self, url: str, crl: x509.CertificateRevocationList) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self._cache_path(url)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(crl.public_bytes(Encoding.DER))
        tmp.replace(path)  # atomic: a crash leaves the old file or the new one
        path.with_suffix(".url").write_text(url + "\n")

    # --- fetching -----------------------------------------------------------------------

    def _verified(self, crl: x509.CertificateRevocationList) -> bool:
        for issuer in self.issuers():
            if issuer.subject != crl.issuer:
                continue
            try:
                if crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                    return True
            except (TypeError, ValueError):
                continue
        return False

    def due(self, now: datetime) -> list[str]:
        return [
            url
            for url, src in self.sources.items()
            if now >= src.refresh_at(self.refresh, self.retry) and url not in self._fetching
        ]

    def wants_fetch(self, url: str, now: datetime) -> bool:
        """A message needs this URL's CRL now: none usable, and not tried within `retry`
        (or a fetch is running, which the caller then joins)."""
        src = self.sources[url]
        if src.state(now, self.refresh, self.retry) not in (CrlState.MISSING, CrlState.EXPIRED):
            return False
        if url in self._fetching or src.last_attempt_at is None:
            return True
        return now >= src.last_attempt_at + self.retry

    def next_due(self) -> datetime | None:
        times = [s.refresh_at(self.refresh, self.retry) for s in self.sources.values()]
        return min(times) if times else None

    async def fetch(self, url: str, client: httpx.AsyncClient) -> bool:
        """Fetch one URL (one fetch per URL at a time); True when a CRL was accepted."""
        running = self._fetching.get(url)
        if running is None:
            running = asyncio.ensure_future(self._fetch(url, client))
            self._fetching[url] = running
            running.add_done_callback(lambda _t: self._fetching.pop(url, None))
        return await asyncio.shield(running)

    async def _fetch(self, url: str, client: httpx.AsyncClient) -> bool:
        src = self.sources.setdefault(url, CrlSource(url))
        now = datetime.now(UTC)
        src.last_attempt_at = now
        try:
            response = await client.get(url, timeout=self.timeout)
            response.raise_for_status()
            data = response.content
            if len(data) > MAX_CRL_BYTES:
                raise ValueError(f"{len(data)} bytes is larger than a CRL may be")
            crl = parse_crl(data)
            if not self._verified(crl):
                raise ValueError("not signed by a trust anchor of the same name")
            if src.crl is not None and crl.last_update_utc < src.crl.last_update_utc:
                raise ValueError("older than the CRL already held")
        except (httpx.HTTPError, ValueError, OSError) as exc:
            src.failures += 1
            src.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            self.metrics.failures.labels(url).inc()
            log.warning("crl.fetch_failed", url=url, error=src.last_error, failures=src.failures)
            return False
        src.crl, src.fetched_at, src.last_error, src.failures = crl, now, None, 0
        try:
            self._store(url, crl)
        except OSError as exc:  # the cache is a convenience; the CRL in memory is in use
            log.warning("crl.cache_write_failed", url=url, error=str(exc)[:200])
        log.info(
            "crl.refreshed",
            url=url,
            this_update=crl.last_update_utc.isoformat(),
            next_update=crl.next_update_utc.isoformat() if crl.next_update_utc else None,
            revoked=len(list(crl)),
        )
        return True

    async def refresh_due(self, client: httpx.AsyncClient) -> None:
        urls = self.due(datetime.now(UTC))
        if urls:
            await asyncio.gather(*(self.fetch(u, client) for u in urls))

    async def run(self, client: httpx.AsyncClient, *, max_sleep: float = 60.0) -> None:
        """The refresher: fetch what is due, sleep until the next is due (or a new URL)."""
        while True:
            self.wake.clear()  # before fetching: a URL added meanwhile wakes the next round
            try:
                await self.refresh_due(client)
            except Exception as exc:  # the loop must outlive any one bad fetch
                log.error("crl.refresh_loop_error", error_type=type(exc).__name__)
            next_due = self.next_due()
            delay = max_sleep
            if next_due is not None:
                delay = min(max_sleep, max(0.5, (next_due - datetime.now(UTC)).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=delay)
