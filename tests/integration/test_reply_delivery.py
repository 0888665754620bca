"""The reply outbox's sender against a real HTTP endpoint on loopback, on both databases, by
an explicit clock (no waiting): delivered is a 2xx; a refusal is retried after the CPA's
RetryInterval doubled per failure and capped, for its Retries, then on the slow schedule;
a resend puts the same row back; the gauge counts what waits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.replyendpoint import ReplyEndpoint, reply_endpoint
from app.keyring import load_keyring
from app.models import MessageEvent
from app.outbound import OutboundClient
from app.platform.db import create_engine, session_factory
from app.platform.metrics import Metrics
from app.platform.settings import Settings
from app.replies import repository as repo
from app.replies.decide import Route
from app.replies.models import ReplyOutbox
from app.replies.sender import deliver_due
from app.state import AppState
from tests.integration.seed import add_message
from tests.tlsserver import tls_server

Sessions = async_sessionmaker[AsyncSession]
T = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def endpoint() -> Iterator[ReplyEndpoint]:
    with reply_endpoint() as found:
        yield found


@pytest.fixture
async def state(settings_with_pki: Settings) -> AsyncIterator[AppState]:
    """What the server's loop works with, without the loop: rounds are run by hand."""
    settings = settings_with_pki.model_copy(
        update={"reply_retry_max_seconds": 300, "reply_slow_retry_seconds": 3600}
    )
    engine = create_engine(settings.database_url, sqlite_synchronous="OFF")
    client = OutboundClient(allow_private=True)
    try:
        yield AppState(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            metrics=Metrics(),
            keyring=load_keyring(settings),
            outbound=client,
        )
    finally:
        await client.aclose()
        await engine.dispose()


async def queued(sessions: Sessions, url: str, *, retries: int = 2, interval: int = 60) -> int:
    seeded = await add_message(sessions, ebms_id="EB-1")
    async with sessions() as s:
        reply_id, new = await repo.queue_reply(
            s,
            repo.StoredReply(message_id=seeded.id, reply_ebms_message_id="R-1@kpr-mottak"),
            Route(channel="http", endpoint=url, retries=retries, retry_interval_seconds=interval),
            party_id=None,
            now=T,
        )
        await s.commit()
    assert new
    return reply_id


async def row(sessions: Sessions, reply_id: int) -> ReplyOutbox:
    async with sessions() as s:
        found = await s.get(ReplyOutbox, reply_id)
        assert found is not None
        return found


async def test_a_2xx_delivers_the_stored_bytes_once(
    state: AppState, endpoint: ReplyEndpoint, sessions: Sessions
) -> None:
    reply_id = await queued(sessions, endpoint.url)

    done = await deliver_due(state, now=T)

    assert (done.claimed, done.delivered) == (1, 1)
    posted = endpoint.next(5)
    assert (posted.body, posted.soap_action) == (b"reply", '"ebXML"')
    got = await row(sessions, reply_id)
    assert (got.status, got.attempts, got.delivered_at) == ("delivered", 1, T)
    assert (await deliver_due(state, now=T + timedelta(days=1))).claimed == 0  # once


async def test_a_refusing_endpoint_is_retried_with_back_off_then_slowly_until_it_is_back(
    state: AppState, endpoint: ReplyEndpoint, sessions: Sessions
) -> None:
    reply_id = await queued(sessions, endpoint.url, retries=2, interval=200)
    endpoint.down()
    now = T
    seen = []
    for _ in range(4):
        assert (await deliver_due(state, now=now)).claimed == 1
        got = await row(sessions, reply_id)
        seen.append((got.status, got.next_attempt_at - now))
        assert (await deliver_due(state, now=now)).claimed == 0  # not due before its time
        now = got.next_attempt_at
    # 200 s, then 400 s capped at 300 s (KPR_REPLY_RETRY_MAX_SECONDS), then the slow schedule
    assert seen == [
        ("pending", timedelta(seconds=200)),
        ("pending", timedelta(seconds=300)),
        ("slow", timedelta(seconds=3600)),
        ("slow", timedelta(seconds=3600)),
    ]
    assert endpoint.refused == 4
    assert state.metrics.replies_waiting.labels("slow")._value.get() == 1

    endpoint.up()
    assert (await deliver_due(state, now=now)).delivered == 1
    got = await row(sessions, reply_id)
    assert (got.status, got.attempts, got.failures) == ("delivered", 5, 0)
    assert state.metrics.replies_waiting.labels("slow")._value.get() == 0
    async with sessions() as s:
        tries: list[dict[str, object]] = list(
            await s.scalars(
                select(MessageEvent.detail)
                .where(MessageEvent.kind == "reply_attempt")
                .order_by(MessageEvent.id)
            )
        )
    assert [(t["outcome"], t["http_status"]) for t in tries] == [("failed", 503)] * 4 + [
        ("delivered", 200)
    ]


async def test_a_requeue_sends_the_same_row_again_with_fresh_retries(
    state: AppState, endpoint: ReplyEndpoint, sessions: Sessions
) -> None:
    reply_id = await queued(sessions, endpoint.url)
    await deliver_due(state, now=T)
    later = T + timedelta(hours=1)
    async with sessions() as s:
        await repo.requeue(s, reply_id, now=later)
        await s.commit()

    assert (await deliver_due(state, now=later)).delivered == 1

    assert [endpoint.next(5).body, endpoint.next(5).body] == [b"reply", b"reply"]
    got = await row(sessions, reply_id)
    assert (got.status, got.attempts) == ("delivered", 2)


async def test_an_address_the_outbound_client_refuses_is_a_failed_try_not_a_crash(
    state: AppState, sessions: Sessions
) -> None:
    reply_id = await queued(sessions, "http://127.0.0.1:9/ebms")  # nothing listens on 9
    strict = AppState(
        settings=state.settings,
        engine=state.engine,
        sessions=state.sessions,
        metrics=state.metrics,
        keyring=state.keyring,
        outbound=OutboundClient(allow_private=False),
    )
    try:
        done = await deliver_due(strict, now=T)
    finally:
        assert strict.outbound is not None
        await strict.outbound.aclose()
    assert (done.claimed, done.failed) == (1, 1)
    got = await row(sessions, reply_id)
    assert got.status == "pending"
    assert got.last_error is not None
    assert got.last_error.startswith("address")


class _MailRelay:
    """The seam the EDI transport's mail sender plugs into (`AppState.reply_mailer`): here
    it keeps what it is given, or refuses like a relay that is down."""

    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.sent: list[tuple[str, bytes, str]] = []
        self.environments: list[str | None] = []

    async def send_reply(
        self, address: str, body: bytes, content_type: str, *, environment: str | None
    ) -> None:
        if self.down:
            raise ConnectionRefusedError("relay down")
        self.sent.append((address, body, content_type))
        self.environments.append(environment)


async def test_a_mailto_reply_goes_through_the_mail_sender(
    state: AppState, sessions: Sessions
) -> None:
    seeded = await add_message(sessions, ebms_id="EB-M", environment="test")
    async with sessions() as s:
        reply_id, _ = await repo.queue_reply(
            s,
            repo.StoredReply(message_id=seeded.id, reply_ebms_message_id=None),
            Route(
                channel="mailto",
                endpoint="mailto://kommune@edi.example.no",
                retries=1,
                retry_interval_seconds=60,
            ),
            party_id=None,
            now=T,
        )
        await s.commit()
    relay = _MailRelay(down=True)
    state.reply_mailer = relay
    assert (await deliver_due(state, now=T)).failed == 1
    assert (await row(sessions, reply_id)).last_error == "ConnectionRefusedError"

    relay.down = False
    assert (await deliver_due(state, now=T + timedelta(minutes=1))).delivered == 1
    assert relay.sent == [("kommune@edi.example.no", b"reply", "multipart/related")]
    assert relay.environments == ["test"]  # the mail leaves from the test environment's address
    state.reply_mailer = None
    async with sessions() as s:
        await repo.requeue(s, reply_id, now=T)
        await s.commit()
    assert (await deliver_due(state, now=T + timedelta(hours=1))).failed == 1  # none configured
    assert (await row(sessions, reply_id)).last_error == "no EDI mail sender is configured"


async def test_an_https_endpoint_is_verified_with_the_configured_trust(
    state: AppState, sessions: Sessions, tmp_path: Path
) -> None:
    """TLS is verified: an endpoint whose CA is not trusted is a failed try; with its CA in
    KPR_OUTBOUND_CA_FILE the same reply is delivered."""
    tls = tls_server(tmp_path / "tls")
    with reply_endpoint(tls=tls.context) as endpoint:
        reply_id = await queued(sessions, endpoint.url)
        failed = await deliver_due(state, now=T)  # the public bundle only
        assert failed.failed == 1
        assert (await row(sessions, reply_id)).last_error == "network: ConnectError"
        trusting = OutboundClient(allow_private=True, ca_file=tls.ca_file)
        try:
            done = await deliver_due(
                replace(state, outbound=trusting), now=T + timedelta(minutes=5)
            )
        finally:
            await trusting.aclose()
        assert done.delivered == 1
        assert endpoint.next(5).body == b"reply"
