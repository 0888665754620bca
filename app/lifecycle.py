"""A running server's operations: the CRL refresher, key reload on SIGHUP, the pid file.

Started and stopped by the lifespan (`app/main.py`). A reload builds a whole new keyring from
the configured files and swaps it in one assignment: a message in progress holds the keyring
it started with (its binding's `keys`), the next one gets the new one. A keyring that does not
load is refused as a whole and the old one stays in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge

from app.amqp.service import start_amqp
from app.edi.listener import run_listeners
from app.edi.runner import start_edi
from app.keyring import KeyringError, load_keyring
from app.outbound import OutboundClient
from app.platform.logs import get_logger
from app.replies import sender as replies_sender
from app.retention.policy import apply_retention
from app.revocation.crls import CrlMetrics, CrlSources, chained, distribution_points
from app.revocation.repository import registered_certificate_pems
from app.security.keys import load_certificate
from app.state import AppState

log = get_logger(__name__)


# A database that hangs must not hold up the start: the registry's CRL URLs can come later.
STARTUP_QUERY_SECONDS = 10.0


@dataclass
class OpsMetrics:
    crl: CrlMetrics
    reloads: Counter
    in_progress: Gauge


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, OpsMetrics] = weakref.WeakKeyDictionary()


def ops_metrics(registry: CollectorRegistry) -> OpsMetrics:
    """One set per registry: a lifespan run twice on one app must not register twice."""
    found = _METRICS.get(registry)
    if found is None:
        found = OpsMetrics(
            crl=CrlMetrics(registry),
            reloads=Counter(
                "kpr_key_reloads_total",
                "Key and certificate reloads (SIGHUP, kpr-mottak keys reload) by outcome",
                ["outcome"],
                registry=registry,
            ),
            in_progress=Gauge(
                "kpr_ebms_in_progress", "POST /ebms requests in progress", registry=registry
            ),
        )
        _METRICS[registry] = found
    return found


@dataclass
class Operations:
    state: AppState
    client: OutboundClient
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    signals: list[int] = field(default_factory=list)

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self.signals:
            loop.remove_signal_handler(sig)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.state.revocation is not None:
            await self.state.revocation.close()
        await self.client.aclose()
        pid_file = self.state.settings.pid_file
        if pid_file is not None:
            with contextlib.suppress(OSError):
                if pid_file.read_text().strip() == str(os.getpid()):  # not the supervisor's
                    pid_file.unlink()


async def learn_registered_distribution_points(state: AppState) -> int:
    """Register the CRL distribution points of the party registry's certificates that chain
    to a trust anchor: a URL in a certificate nobody vouches for (an AR/CPA import can hold
    anything) is never fetched."""
    if state.revocation is None:
        return 0
    async with state.sessions() as session:
        pems = await registered_certificate_pems(session)
    certs = []
    for pem in pems:
        try:
            certs.append(load_certificate(pem.encode()))
        except ValueError:
            continue
    trusted = chained(certs, state.keyring.trust_anchors, datetime.now(UTC))
    return len(state.revocation.add_urls(u for c in trusted for u in distribution_points(c)))


async def reload_keys(state: AppState) -> bool:
    """Load the keyring again from the configured files and swap it in; False (old keys kept)
    when any file cannot be used."""
    metrics = ops_metrics(state.metrics.registry)
    try:
        keyring = await anyio.to_thread.run_sync(lambda: load_keyring(state.settings))
    except (KeyringError, OSError, ValueError) as exc:
        metrics.reloads.labels("failed").inc()
        log.error("keys.reload_failed", error=str(exc)[:300])
        return False
    state.keyring = keyring
    try:
        learned = await learn_registered_distribution_points(state)
    except Exception as exc:  # the database may be down; the refresher learns later
        learned = 0
        log.warning("keys.reload_registry_unavailable", error_type=type(exc).__name__)
    metrics.reloads.labels("ok").inc()
    log.info(
        "keys.reloaded",
        decryption_keys=len(keyring.decryption),
        trust_anchors=len(keyring.trust_anchors),
        signing=keyring.signing is not None,
        crl_urls_learned=learned,
    )
    return True


async def start_operations(state: AppState) -> Operations:
    settings = state.settings
    metrics = ops_metrics(state.metrics.registry)
    client = OutboundClient(
        allow_private=settings.outbound_private_allowed, ca_file=settings.outbound_ca_file
    )
    state.outbound = client
    sources = CrlSources(
        cache_dir=settings.crl_cache_dir,
        issuers=lambda: state.keyring.trust_anchors,
        refresh=timedelta(seconds=settings.crl_refresh_seconds),
        retry=timedelta(seconds=settings.crl_retry_seconds),
        timeout=settings.crl_fetch_timeout_seconds,
        metrics=metrics.crl,
        outbound=client,
        max_bytes=settings.crl_max_bytes,
        ocsp_max_bytes=settings.ocsp_max_bytes,
    )
    sources.load_cache()
    sources.add_urls(settings.crl_urls)
    state.revocation = sources
    try:
        await asyncio.wait_for(learn_registered_distribution_points(state), STARTUP_QUERY_SECONDS)
    except Exception as exc:  # start even when the database is down; a reload learns them
        log.warning("crl.registry_unavailable", error_type=type(exc).__name__)
    ops = Operations(state, client)
    ops.tasks.append(asyncio.create_task(sources.run(), name="kpr-crl-refresher"))
    if settings.retention_interval_hours > 0:
        ops.tasks.append(asyncio.create_task(_retention_loop(state), name="kpr-retention"))
    # asynchronous replies to the endpoints of the senders' CPAs (issue 26)
    ops.tasks.append(asyncio.create_task(replies_sender.run(state), name="kpr-reply-sender"))
    amqp = start_amqp(state)  # the AMQP receiver when KPR_AMQP_URL is set (issue 24)
    ops.tasks += [amqp] if amqp is not None else []
    edi = start_edi(state)  # mailboxes and reply mails when KPR_EDI_* is set (issue 25)
    ops.tasks += [edi] if edi is not None else []
    if settings.edi_listen:  # mail the site's MTA hands over directly (issue 25)
        ops.tasks.append(asyncio.create_task(run_listeners(state), name="kpr-edi-listen"))
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        # Only in the main thread of a process that owns its signals (not under a test's
        # ASGI transport in a worker thread).
        loop.add_signal_handler(
            signal.SIGHUP, lambda: ops.tasks.append(asyncio.create_task(_reload(state)))
        )
        ops.signals.append(signal.SIGHUP)
    if settings.pid_file is not None:
        # Under `serve --workers N` the supervisor's pid: its SIGHUP restarts every worker
        # (uvicorn), each starting with the files as they are then.
        parent = multiprocessing.parent_process()
        pid = parent.pid if parent is not None and parent.pid is not None else os.getpid()
        settings.pid_file.parent.mkdir(parents=True, exist_ok=True)
        settings.pid_file.write_text(f"{pid}\n")
    return ops


async def _reload(state: AppState) -> None:
    log.info("keys.reload_requested", via="SIGHUP")
    await reload_keys(state)


# The first run waits a little: a restart loop must not turn into a retention loop.
RETENTION_FIRST_DELAY_SECONDS = 600.0


async def _retention_loop(state: AppState) -> None:
    interval = state.settings.retention_interval_hours * 3600
    await asyncio.sleep(min(interval, RETENTION_FIRST_DELAY_SECONDS))
    while True:
        try:
            await apply_retention(
                state.sessions, state.settings, datetime.now(UTC), writer=state.sqlite_writer
            )
        except Exception as exc:  # the database may be down: try again next round
            log.error("retention.failed", error_type=type(exc).__name__)
        await asyncio.sleep(interval)
