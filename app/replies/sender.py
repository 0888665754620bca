"""The reply outbox's sender: delivers the replies queued by the binding (issue 26), at least
once, through the service's one outbound HTTP client (deadline, byte cap, no redirects, the
address checked, TLS verified).

A round claims the due rows (leased, as the notification outbox does), POSTs each stored reply
to its endpoint with `SOAPAction: "ebXML"`, and records the try as the message's event
`reply_attempt`: "delivered" is an HTTP 2xx; anything else is retried after the CPA's
RetryInterval, doubled per failure and capped by KPR_REPLY_RETRY_MAX_SECONDS, for the CPA's
Retries, then every KPR_REPLY_SLOW_RETRY_SECONDS until it is delivered or an operator resends.
A mailto: endpoint goes through the EDI mail sender when one is configured (`AppState.
reply_mailer`). The loop never raises; it runs in every server process."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.ebxml.build import SOAP_ACTION
from app.outbound import OutboundClient, OutboundError
from app.platform.logs import get_logger
from app.replies import repository as repo
from app.replies.decide import next_delay
from app.state import AppState

log = get_logger(__name__)

BATCH = 10
POLL_SECONDS = 2.0
# An endpoint's answer is read only to see it ended (an ebMS MSH answers with little or nothing).
ANSWER_MAX_BYTES = 64 * 1024


class MailReplies(Protocol):
    """The EDI transport's mail sender, as far as replies go."""

    async def send_reply(
        self, address: str, body: bytes, content_type: str, *, environment: str | None
    ) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Tried:
    delivered: bool
    error: str | None = None
    http_status: int | None = None


@dataclass(frozen=True, slots=True)
class Round:
    claimed: int = 0
    delivered: int = 0
    failed: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


async def deliver_due(state: AppState, *, now: datetime | None = None, batch: int = BATCH) -> Round:
    """One round: claim what is due, try each, record each try. `now` for tests (a try is
    due when its time has come by that clock)."""
    clock = now or _now()
    timeout = state.settings.reply_timeout_seconds
    lease = timedelta(seconds=timeout * (batch + 2))
    guard = state.sqlite_writer or contextlib.nullcontext()
    async with guard, state.sessions() as session:
        claimed = await repo.claim_due(session, clock, batch, lease)
        await session.commit()
    delivered = failed = 0
    for reply in claimed:
        tried = await _try(state, reply)
        at = now or _now()
        async with guard, state.sessions() as session:
            await _record(state, session, reply, tried, at)
            await session.commit()
        delivered += tried.delivered
        failed += not tried.delivered
    await _update_gauge(state)
    return Round(len(claimed), delivered, failed)


async def _try(state: AppState, reply: repo.ClaimedReply) -> Tried:
    mailto = reply.channel == "mailto"
    async with state.sessions() as session:
        found = await repo.reply_bytes(session, reply.message_id)
        # a reply mail leaves from the EDI address of the message's environment
        environment = await repo.message_environment(session, reply.message_id) if mailto else None
    if found is None:
        return Tried(delivered=False, error="the stored reply is gone (retention)")
    body, content_type = found
    if mailto:
        return await _mail(state, reply.endpoint, body, content_type, environment)
    client = state.outbound
    if client is None:
        return Tried(delivered=False, error="no outbound HTTP client (server starting)")
    return await _post(
        client, reply.endpoint, body, content_type, state.settings.reply_timeout_seconds
    )


async def _post(
    client: OutboundClient, url: str, body: bytes, content_type: str, deadline: float
) -> Tried:
    try:
        answer = await client.request(
            "POST",
            url,
            max_bytes=ANSWER_MAX_BYTES,
            deadline=deadline,
            headers={"Content-Type": content_type, "SOAPAction": SOAP_ACTION},
            content=body,
        )
    except OutboundError as exc:  # its text names neither the URL nor what came back
        return Tried(delivered=False, error=str(exc)[:300], http_status=exc.status)
    return Tried(delivered=True, http_status=answer.status)


async def _mail(
    state: AppState, endpoint: str, body: bytes, content_type: str, environment: str | None
) -> Tried:
    mailer = state.reply_mailer
    if mailer is None:
        return Tried(delivered=False, error="no EDI mail sender is configured")
    address = endpoint.strip()[len("mailto:") :].lstrip("/")
    try:
        await mailer.send_reply(  # type: ignore[attr-defined]
            address, body, content_type, environment=environment
        )
    except Exception as exc:
        return Tried(delivered=False, error=type(exc).__name__)
    return Tried(delivered=True)


async def _record(
    state: AppState, session: AsyncSession, reply: repo.ClaimedReply, tried: Tried, at: datetime
) -> None:
    attempt = reply.attempts + 1
    if tried.delivered:
        await repo.mark_delivered(session, reply, at)
        repo.add_event(
            session,
            reply.message_id,
            "reply_attempt",
            at,
            reply=reply.id,
            attempt=attempt,
            outcome="delivered",
            http_status=tried.http_status,
        )
        state.metrics.reply_deliveries.labels("delivered").inc()
        log.info(
            "replies.delivered", message_id=reply.message_id, reply_id=reply.id, attempt=attempt
        )
        return
    s = state.settings
    delay, slow = next_delay(
        reply.failures + 1,
        retries=reply.retries,
        interval=reply.retry_interval_seconds,
        cap=s.reply_retry_max_seconds,
        slow=s.reply_slow_retry_seconds,
    )
    next_at = at + timedelta(seconds=delay)
    await repo.mark_failed(session, reply, next_at=next_at, slow=slow, error=tried.error or "")
    repo.add_event(
        session,
        reply.message_id,
        "reply_attempt",
        at,
        reply=reply.id,
        attempt=attempt,
        outcome="failed",
        http_status=tried.http_status,
        error=(tried.error or "")[:300],
        next_attempt_at=next_at.isoformat(),
        slow=slow,
    )
    state.metrics.reply_deliveries.labels("failed").inc()
    log.warning(
        "replies.failed", message_id=reply.message_id, reply_id=reply.id, attempt=attempt, slow=slow
    )


async def _update_gauge(state: AppState) -> None:
    async with state.sessions() as session:
        counts = await repo.waiting_counts(session)
    for status, count in counts.items():
        state.metrics.replies_waiting.labels(status).set(count)


async def run(state: AppState, stop: asyncio.Event | None = None) -> None:
    """Rounds until cancelled (or `stop`): straight on after a full batch or a wake-up during
    the round (a reply queued meanwhile), else after POLL_SECONDS."""
    while stop is None or not stop.is_set():
        state.reply_wakeup.clear()  # before the round: a reply queued during it is not missed
        done = Round()
        try:
            done = await deliver_due(state)
        except Exception as exc:  # the database may be down: next round
            log.error("replies.round_failed", error_type=type(exc).__name__)
        if done.claimed >= BATCH:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.reply_wakeup.wait(), timeout=POLL_SECONDS)
