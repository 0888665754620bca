"""CRLs from the distribution points the certificates name, cached on disk, kept current.

Each URL is a `CrlSource`. A fetched CRL replaces the one held only when it parses, is signed
by a trust anchor (or configured intermediate) of the same name and is newer than the one held
(a later thisUpdate or a higher CRL number): a broken or replayed download never displaces the
last good CRL, which is used until its nextUpdate. A CRL is refreshed halfway between its
thisUpdate and nextUpdate (and at least every `refresh`), so a CA that is down for a while is
noticed long before its CRL expires: the source is then `stale`, and only after nextUpdate
`expired` (messages from that issuer then get the temporary DeliveryFailure, DOMAIN 2.2).

Fetches run only in the refresher (`run`), never while a message waits, through the one
outbound client (`app/outbound.py`: overall deadline, byte cap, no redirects). Whatever the
outcome, a URL is not tried again within `retry` of the last attempt (a CA whose newest CRL is
past nextUpdate is not hammered), and across worker processes: an flock per URL under the cache
directory lets one fetch at a time, and a `.state` file beside it records the last attempt, so
the workers share the back-off and take each other's CRL from the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import IO

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import CollectorRegistry, Counter, Gauge

from app.outbound import OutboundClient, OutboundError
from app.platform.logs import get_logger
from app.revocation.ocsp import OcspAnswers
from app.security.certificates import build_chain

log = get_logger(__name__)

# A CRL larger than this is not a CRL we want to parse (KPR_CRL_MAX_BYTES).
MAX_CRL_BYTES = 32 * 1024 * 1024
_NEVER = datetime.min.replace(tzinfo=UTC)


class CrlState(StrEnum):
    OK = "ok"
    STALE = "stale"  # a refresh is due and has failed: still usable until nextUpdate
    EXPIRED = "expired"  # past nextUpdate and no newer one: messages get DeliveryFailure
    MISSING = "missing"  # never fetched


class Outcome(StrEnum):
    """What one attempt at a URL brought (`kpr_crl_fetches_total{outcome}`)."""

    NEW = "new"  # a newer CRL, now in use
    UNCHANGED = "unchanged"  # the same CRL again (or an older one): nothing newer
    FAILED = "failed"  # no answer, an error status, too large, not a CRL, not signed by a CA
    SHARED = "shared"  # another worker tried within the retry period: its result taken
    BUSY = "busy"  # another worker is fetching it now


@dataclass
class CrlSource:
    url: str
    crl: x509.CertificateRevocationList | None = None
    fetched_at: datetime | None = None  # when the CRL held was accepted
    last_attempt_at: datetime | None = None
    last_outcome: Outcome | None = None
    last_error: str | None = None
    failures: int = 0  # in a row

    def refresh_at(self, refresh: timedelta, retry: timedelta) -> datetime:
        """When this source should next be fetched: never within `retry` of the last
        attempt, whatever it brought."""
        if self.crl is None or self.fetched_at is None:
            due = _NEVER
        else:
            due = self.fetched_at + refresh
            next_update = self.crl.next_update_utc
            if next_update is not None:
                last = self.crl.last_update_utc
                due = min(due, last + (next_update - last) / 2)
        if self.last_attempt_at is not None:
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


def chained(
    certs: Iterable[x509.Certificate], anchors: tuple[x509.Certificate, ...], now: datetime
) -> list[x509.Certificate]:
    """The certificates that chain to a trust anchor: only their URLs are the CA's, and only
    they are ever fetched from (never a URL from a certificate nobody vouches for)."""
    return [c for c in certs if build_chain(c, anchors, (), now) is not None]


def parse_crl(data: bytes) -> x509.CertificateRevocationList:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except (x509.ExtensionNotFound, ValueError):
        return None


def is_newer(
    crl: x509.CertificateRevocationList, held: x509.CertificateRevocationList | None
) -> bool:
    """A later thisUpdate, or the same thisUpdate with a higher CRL number."""
    if held is None:
        return True
    if crl.last_update_utc != held.last_update_utc:
        return crl.last_update_utc > held.last_update_utc
    number, held_number = crl_number(crl), crl_number(held)
    return number is not None and held_number is not None and number > held_number


class CrlMetrics:
    """No URL in any label: /metrics is not authenticated, and the URLs come from
    certificates (operators read them at GET /api/v1/revocation)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sources = Gauge(
            "kpr_crl_sources",
            "CRL distribution points known, by state (ok, stale, expired, missing)",
            ["state"],
            registry=registry,
        )
        self.fetches = Counter(
            "kpr_crl_fetches_total",
            "Attempts at a CRL distribution point by outcome (new, unchanged, failed, shared,"
            " busy)",
            ["outcome"],
            registry=registry,
        )
        self.next_update_earliest = Gauge(
            "kpr_crl_next_update_earliest_timestamp_seconds",
            "The earliest nextUpdate of the CRLs held (Unix time; 0 when none is held)",
            registry=registry,
        )
        self.ocsp = Counter(
            "kpr_ocsp_requests_total",
            "OCSP questions by outcome (good, revoked, failed)",
            ["outcome"],
            registry=registry,
        )


@dataclass(frozen=True, slots=True)
class _Shared:
    """The last attempt at a URL by any worker (the `.state` file)."""

    at: datetime
    outcome: Outcome
    error: str | None


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
        outbound: OutboundClient | None = None,
        max_bytes: int = MAX_CRL_BYTES,
        ocsp_max_bytes: int = 64 * 1024,
    ) -> None:
        self.cache_dir = cache_dir
        self.issuers = issuers  # the current trust anchors: a reload changes them
        self.refresh = refresh
        self.retry = retry
        self.timeout = timeout  # the overall deadline of one fetch
        self.max_bytes = max_bytes
        self.metrics = metrics
        self.outbound = outbound  # None: nothing is fetched (the cache and KPR_CRL_DIR only)
        self.sources: dict[str, CrlSource] = {}
        self.wake = asyncio.Event()
        # where no current CRL decides; asked in the background too
        self.ocsp = OcspAnswers(
            timeout=timeout,
            retry=retry,
            max_bytes=ocsp_max_bytes,
            outbound=outbound,
            counter=metrics.ocsp,
        )
        self._fetching: dict[str, asyncio.Task[bool]] = {}

    # --- what is held -------------------------------------------------------------------

    def crls(self) -> tuple[x509.CertificateRevocationList, ...]:
        return tuple(s.crl for s in self.sources.values() if s.crl is not None)

    def add_urls(self, urls: Iterable[str]) -> list[str]:
        """Register distribution points; returns those not known before. Callers pass only
        URLs from certificates that chain to a trust anchor, or configured ones."""
        new = [u for u in dict.fromkeys(urls) if u not in self.sources]
        for url in new:
            self.sources[url] = CrlSource(url)
        if new:
            self.wake.set()
        return new

    def needs(self, urls: Iterable[str], now: datetime) -> bool:
        """Whether any of these has no usable CRL (a message just could not be checked)."""
        return any(
            self.sources[u].state(now, self.refresh, self.retry)
            in (CrlState.MISSING, CrlState.EXPIRED)
            for u in urls
            if u in self.sources
        )

    def counts(self, now: datetime) -> dict[str, int]:
        """Sources per state, every state named (for /readyz and /metrics)."""
        out = {s.value: 0 for s in CrlState}
        for src in self.sources.values():
            out[src.state(now, self.refresh, self.retry).value] += 1
        return out

    def report(self, now: datetime) -> list[dict[str, object]]:
        """Per URL, for operators (GET /api/v1/revocation): never on a public endpoint."""
        out: list[dict[str, object]] = []
        for url, src in sorted(self.sources.items()):
            crl = src.crl
            out.append(
                {
                    "url": url,
                    "state": src.state(now, self.refresh, self.retry).value,
                    "this_update": crl.last_update_utc if crl is not None else None,
                    "next_update": crl.next_update_utc if crl is not None else None,
                    "crl_number": crl_number(crl) if crl is not None else None,
                    "fetched_at": src.fetched_at,
                    "last_attempt_at": src.last_attempt_at,
                    "last_outcome": src.last_outcome.value if src.last_outcome else None,
                    "last_error": src.last_error,
                    "failures": src.failures,
                    "next_attempt_at": max(src.refresh_at(self.refresh, self.retry), now),
                    "fetching": url in self._fetching,
                }
            )
        return out

    def export_metrics(self, now: datetime) -> None:
        for state, count in self.counts(now).items():
            self.metrics.sources.labels(state).set(count)
        updates = [c.next_update_utc for c in self.crls() if c.next_update_utc is not None]
        self.metrics.next_update_earliest.set(min(updates).timestamp() if updates else 0)

    # --- the disk cache -----------------------------------------------------------------

    def _path(self, url: str, suffix: str) -> Path:
        return self.cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:32]}{suffix}"

    def _cache_path(self, url: str) -> Path:
        return self._path(url, ".crl")

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
            shared = self._read_state(url)
            if shared is not None:  # the back-off survives a restart (a restart loop too)
                src.last_attempt_at, src.last_outcome = shared.at, shared.outcome
                src.last_error = shared.error
        log.info("crl.cache_loaded", count=sum(1 for s in self.sources.values() if s.crl))

    def _store(self, url: str, crl: x509.CertificateRevocationList) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self._cache_path(url)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(crl.public_bytes(Encoding.DER))
        tmp.replace(path)  # atomic: a crash leaves the old file or the new one
        path.with_suffix(".url").write_text(url + "\n")

    def _adopt_cached(self, src: CrlSource) -> bool:
        """Take the CRL another worker stored, when it is newer than ours."""
        try:
            crl = parse_crl(self._cache_path(src.url).read_bytes())
        except (OSError, ValueError):
            return False
        if not is_newer(crl, src.crl) or not self._verified(crl):
            return False
        src.crl, src.fetched_at = crl, datetime.now(UTC)
        return True

    # --- sharing with the other workers -------------------------------------------------

    def _try_lock(self, url: str) -> IO[bytes] | None:
        """The URL's lock, or None when another worker holds it (never waits)."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        handle = self._path(url, ".lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return handle

    def _read_state(self, url: str) -> _Shared | None:
        try:
            raw = json.loads(self._path(url, ".state").read_text())
            return _Shared(
                datetime.fromtimestamp(float(raw["at"]), UTC),
                Outcome(raw["outcome"]),
                raw.get("error"),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_state(self, url: str, shared: _Shared) -> None:
        path = self._path(url, ".state")
        tmp = path.with_suffix(f".state-tmp{os.getpid()}")
        with contextlib.suppress(OSError):  # the back-off in memory still holds
            tmp.write_text(
                json.dumps(
                    {"at": shared.at.timestamp(), "outcome": shared.outcome, "error": shared.error}
                )
            )
            tmp.replace(path)

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

    def next_due(self) -> datetime | None:
        times = [s.refresh_at(self.refresh, self.retry) for s in self.sources.values()]
        return min(times) if times else None

    async def fetch(self, url: str) -> bool:
        """Fetch one URL (one fetch per URL at a time); True when a newer CRL was accepted."""
        running = self._fetching.get(url)
        if running is None:
            running = asyncio.ensure_future(self._fetch(url))
            self._fetching[url] = running
            running.add_done_callback(lambda _t: self._fetching.pop(url, None))
        return await asyncio.shield(running)

    async def _fetch(self, url: str) -> bool:
        src = self.sources.setdefault(url, CrlSource(url))
        now = datetime.now(UTC)
        lock = self._try_lock(url)
        if lock is None:  # another worker fetches it now: its CRL arrives through the cache
            # look again once that fetch is over (its deadline), and then take its result
            wait = min(self.retry, timedelta(seconds=self.timeout + 1))
            src.last_attempt_at = now - self.retry + wait
            self.metrics.fetches.labels(Outcome.BUSY.value).inc()
            return False
        try:
            shared = self._read_state(url)
            if shared is not None and now < shared.at + self.retry:
                # another worker (or this one before a restart) tried within the retry period
                src.last_attempt_at, src.last_outcome = shared.at, Outcome.SHARED
                src.last_error = shared.error
                self.metrics.fetches.labels(Outcome.SHARED.value).inc()
                return self._adopt_cached(src)
            src.last_attempt_at = now
            # read by another worker only if this one stops before the end of the attempt
            self._write_state(url, _Shared(now, Outcome.FAILED, "an attempt did not finish"))
            outcome = await self._download(src)
            self._write_state(url, _Shared(now, outcome, src.last_error))
            return outcome is Outcome.NEW
        finally:
            lock.close()  # releases the flock

    async def _download(self, src: CrlSource) -> Outcome:
        url = src.url
        try:
            if self.outbound is None:
                raise ValueError("no outbound client")
            response = await self.outbound.get(
                url, max_bytes=self.max_bytes, deadline=self.timeout, accept="application/pkix-crl"
            )
            crl = await asyncio.to_thread(parse_crl, response.content)
            if not self._verified(crl):
                raise ValueError("not signed by a trust anchor of the same name")
        except (OutboundError, ValueError, OSError) as exc:
            src.failures += 1
            src.last_outcome = Outcome.FAILED
            src.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            self.metrics.fetches.labels(Outcome.FAILED.value).inc()
            log.warning("crl.fetch_failed", url=url, error=src.last_error, failures=src.failures)
            return Outcome.FAILED
        if not is_newer(crl, src.crl):
            # the CA has not renewed it (or serves an older one): back off, keep what is held
            src.last_outcome, src.last_error, src.failures = Outcome.UNCHANGED, None, 0
            self.metrics.fetches.labels(Outcome.UNCHANGED.value).inc()
            log.info("crl.unchanged", url=url, this_update=crl.last_update_utc.isoformat())
            return Outcome.UNCHANGED
        src.crl, src.fetched_at = crl, datetime.now(UTC)
        src.last_outcome, src.last_error, src.failures = Outcome.NEW, None, 0
        self.metrics.fetches.labels(Outcome.NEW.value).inc()
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
        return Outcome.NEW

    async def refresh_due(self) -> None:
        urls = self.due(datetime.now(UTC))
        if urls:
            await asyncio.gather(*(self.fetch(u) for u in urls))

    async def run(self, *, max_sleep: float = 60.0) -> None:
        """The refresher: fetch what is due, sleep until the next is due (or a new URL)."""
        while True:
            self.wake.clear()  # before fetching: a URL added meanwhile wakes the next round
            try:
                await self.refresh_due()
            except Exception as exc:  # the loop must outlive any one bad fetch
                log.error("crl.refresh_loop_error", error_type=type(exc).__name__)
            next_due = self.next_due()
            delay = max_sleep
            if next_due is not None:
                delay = min(max_sleep, max(0.5, (next_due - datetime.now(UTC)).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=delay)

    async def close(self) -> None:
        """Cancel the fetches under way (shielded from the refresher's own cancellation)."""
        running = list(self._fetching.values())
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.ocsp.close()
