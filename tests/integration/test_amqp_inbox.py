"""The AMQP inbox and outbox without a broker: dedup by message-id, the answers' rows, back-off.

The port here is a stand-in for the intake core (until the core's seam is wired in): it
answers by the payload's first bytes.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.amqp import processor, repository
from app.amqp.conditions import ErrorCondition
from app.amqp.core_port import InboxMessage, PortOutcome, Verdict
from app.amqp.envelope import CONTENT_TYPE, Envelope, Refusal
from app.amqp.link import Publisher
from app.amqp.processor import process_due
from app.amqp.repository import due_inbox, due_outbox, inbox_status, store_inbox
from app.amqp.runner import AmqpRunner, consumed_queues
from app.amqp.sender import send_due
from app.models import AmqpInbox, AmqpOutbox, Message, MessageEvent, RegistryEntry, utcnow
from app.platform.settings import Settings

Sessions = async_sessionmaker[AsyncSession]


class ByPayload:
    async def process(self, message: InboxMessage) -> PortOutcome:
        if message.body.startswith(b"retry"):
            return PortOutcome(Verdict.RETRY, reason="revocation status unknown")
        if message.body.startswith(b"boom"):
            raise RuntimeError("unexpected")
        if message.body.startswith(b"spoof"):
            refusal = Refusal(ErrorCondition.SPOOFING_ATTACK, "Avsender stemmer ikke.")
            return PortOutcome(Verdict.ERROR, refusal=refusal)
        return PortOutcome(Verdict.APPREC, apprec=b"apprec:" + message.body)


def _envelope(message_id: str, **extra: str) -> Envelope:
    application = {
        "fromHerId": "8094866",
        "toHerId": "134197",
        "applicationTimeStamp": "2026-12-05T22:50:00Z",
    }
    application.update(extra)
    return Envelope(message_id, "134197_async", "KPR_IPLOS", None, None, CONTENT_TYPE, application)


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, Envelope, bytes]] = []
        self.fail = fail

    def send(self, queue: str, envelope: Envelope, body: bytes) -> None:
        if self.fail:
            raise ConnectionError("broker away")
        self.sent.append((queue, envelope, body))


async def test_redelivery_is_stored_once_and_answered_once(sessions: Sessions) -> None:
    assert await store_inbox(sessions, "134197_async", _envelope("m-1"), b"ok")
    assert not await store_inbox(sessions, "134197_async", _envelope("m-1"), b"ok")
    assert await inbox_status(sessions, "m-1") == "pending"
    assert await process_due(sessions, ByPayload(), 1000) == 1
    assert await process_due(sessions, ByPayload(), 1000) == 0
    assert await inbox_status(sessions, "m-1") == "done"
    recorder = Recorder()
    assert await send_due(sessions, recorder) == 1
    assert await send_due(sessions, recorder) == 0
    [(queue, envelope, body)] = recorder.sent
    assert (queue, body) == ("8094866_async", b"apprec:ok")
    assert envelope.application["toHerId"] == "8094866"
    assert envelope.correlation_id == "m-1"


async def test_errors_go_to_the_senders_error_queue_with_empty_body(sessions: Sessions) -> None:
    await store_inbox(sessions, "134197_async", _envelope("m-2"), b"spoof")
    await store_inbox(sessions, "134197_async", _envelope("m-3", toHerId=""), b"ok")
    await store_inbox(sessions, "134197_async", _envelope("m-4"), b"x" * 11)
    await store_inbox(sessions, "134197_error", _envelope("m-5"), b"")
    await process_due(sessions, ByPayload(), 10)
    recorder = Recorder()
    await send_due(sessions, recorder)
    conditions = sorted(e.application["errorCondition"] for _, e, _ in recorder.sent)
    assert conditions == [
        "abuse:spoofing-attack",
        "transport:invalid-field-value",
        "transport:unsupported-message",
    ]
    assert {q for q, _, _ in recorder.sent} == {"8094866_error"}
    assert {b for _, _, b in recorder.sent} == {b""}
    assert await inbox_status(sessions, "m-5") == "done"


async def test_a_message_over_the_limit_is_refused_and_its_body_not_kept(
    sessions: Sessions,
) -> None:
    assert await store_inbox(sessions, "134197_async", _envelope("big-1"), b"x" * 11, 10)
    async with sessions() as session:
        row = (await session.scalars(select(AmqpInbox))).one()
        await session.refresh(row, ["body"])
        assert (row.body, row.properties["body_bytes"]) == (b"", 11)
    await process_due(sessions, ByPayload(), 10)
    recorder = Recorder()
    await send_due(sessions, recorder)
    [(queue, envelope, body)] = recorder.sent
    assert (queue, body) == ("8094866_error", b"")
    assert envelope.application["errorCondition"] == "transport:unsupported-message"
    assert "11 byte" in envelope.application["errorDescription"]
    assert "grensen på 10 byte" in envelope.application["errorDescription"]


async def test_answers_go_to_the_queues_the_registry_names(sessions: Sessions) -> None:
    """The AR's E_SB_ASYNC / E_SB_ERROR addresses (cached by the registries' sync) win over
    the `{her}_async` / `{her}_error` names."""
    now = utcnow()
    async with sessions() as session:
        session.add(
            RegistryEntry(
                her_id=8094866,
                known=True,
                fetched_at=now,
                expires_at=now,
                async_queue="sb.test.nhn.no/DigitalDialog/8094866_a",
                error_queue="sb.test.nhn.no/DigitalDialog/8094866_e",
            )
        )
        await session.commit()
    await store_inbox(sessions, "134197_async", _envelope("reg-1"), b"ok")
    await store_inbox(sessions, "134197_async", _envelope("reg-2"), b"spoof")
    await process_due(sessions, ByPayload(), 1000)
    recorder = Recorder()
    await send_due(sessions, recorder)
    assert sorted((q, e.to) for q, e, _ in recorder.sent) == [
        ("8094866_a", "8094866_a"),
        ("8094866_e", "8094866_e"),
    ]


class Stored(ByPayload):
    """Answers as ByPayload, naming an audit row the core would have stored."""

    def __init__(self, message_id: int) -> None:
        self.message_id = message_id

    async def process(self, message: InboxMessage) -> PortOutcome:
        outcome = await super().process(message)
        return PortOutcome(outcome.verdict, apprec=outcome.apprec, message_id=self.message_id)


async def test_a_senders_report_about_our_reply_goes_into_the_audit(sessions: Sessions) -> None:
    async with sessions() as session:
        message = Message(request_id="r-1", size_bytes=2, status="OK", transport="amqp")
        session.add(message)
        await session.commit()
        message_id = message.id
    await store_inbox(sessions, "134197_async", _envelope("rep-1"), b"ok")
    await process_due(sessions, Stored(message_id), 1000)
    recorder = Recorder()
    await send_due(sessions, recorder)
    [(_, apprec, _)] = recorder.sent
    report = _envelope(
        "rep-2",
        originalMessageId=apprec.message_id,
        errorCondition="transport:invalid-certificate",
        errorDescription="Kan ikke dekryptere.",
    )
    await store_inbox(sessions, "134197_error", report, b"")
    stray = _envelope("rep-3", originalMessageId="not-ours", errorCondition="x")
    await store_inbox(sessions, "134197_error", stray, b"")
    await process_due(sessions, ByPayload(), 1000)
    async with sessions() as session:
        rows = (await session.scalars(select(AmqpInbox).order_by(AmqpInbox.id))).all()
        events = (await session.scalars(select(MessageEvent))).all()
    assert [(r.status, r.message_id) for r in rows[1:]] == [("done", message_id), ("done", None)]
    [event] = events
    assert (event.message_id, event.kind) == (message_id, "amqp_error_report")
    assert event.detail["condition"] == "transport:invalid-certificate"
    assert event.detail["description"] == "Kan ikke dekryptere."
    assert event.detail["reply"] == apprec.message_id


class Interleaved(ByPayload):
    """Records the order of processing; yields to the loop so senders interleave."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def process(self, message: InboxMessage) -> PortOutcome:
        self.seen.append(message.envelope.message_id)
        await asyncio.sleep(0.01)
        return await super().process(message)


async def test_senders_side_by_side_each_in_its_order(sessions: Sessions) -> None:
    for i in range(3):
        for sender in ("8094866", "8094867"):
            await store_inbox(
                sessions, "134197_async", _envelope(f"{sender}-{i}", fromHerId=sender), b"ok"
            )
    port = Interleaved()
    assert await process_due(sessions, port, 1000, concurrency=2) == 6
    assert [m for m in port.seen if m.startswith("8094866")] == [f"8094866-{i}" for i in range(3)]
    assert [m for m in port.seen if m.startswith("8094867")] == [f"8094867-{i}" for i in range(3)]
    assert port.seen[:2] == ["8094866-0", "8094867-0"]  # the second sender did not wait
    recorder = Recorder()
    assert await send_due(sessions, recorder) == 6


async def test_a_failed_sender_run_fails_the_cycle_after_the_others_ended(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store failing for one sender's message: the other sender's run still ends, then
    the cycle fails (the runner logs it); the failed message is still due."""
    finish = repository.finish_inbox

    async def failing(sessions: Sessions, inbox_id: int, *rest: object) -> None:
        if inbox_id == first:
            raise RuntimeError("database away")
        await finish(sessions, inbox_id, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(processor, "finish_inbox", failing)
    await store_inbox(sessions, "134197_async", _envelope("a-1", fromHerId="1"), b"ok")
    await store_inbox(sessions, "134197_async", _envelope("b-1", fromHerId="2"), b"ok")
    first = min(m.inbox_id for m in await due_inbox(sessions))
    with pytest.raises(RuntimeError, match="database away"):
        await process_due(sessions, Interleaved(), 1000, concurrency=2)
    assert await inbox_status(sessions, "b-1") == "done"
    assert await inbox_status(sessions, "a-1") == "pending"


async def test_temporary_failures_wait_in_the_store(sessions: Sessions) -> None:
    await store_inbox(sessions, "134197_async", _envelope("m-6"), b"retry")
    await store_inbox(sessions, "134197_async", _envelope("m-7"), b"boom")
    assert await process_due(sessions, ByPayload(), 1000) == 2
    assert await process_due(sessions, ByPayload(), 1000) == 0  # backed off, not due
    async with sessions() as session:
        rows = (await session.scalars(select(AmqpInbox).order_by(AmqpInbox.id))).all()
        assert [(r.status, r.attempts) for r in rows] == [("pending", 1), ("pending", 1)]
        assert rows[0].next_attempt_at > rows[0].received_at
        assert rows[1].last_error == "RuntimeError"


async def test_a_failed_send_is_retried_later(sessions: Sessions) -> None:
    await store_inbox(sessions, "134197_async", _envelope("m-8"), b"ok")
    await process_due(sessions, ByPayload(), 1000)
    assert await send_due(sessions, Recorder(fail=True)) == 0
    assert await due_outbox(sessions) == []
    async with sessions() as session:
        row = (await session.scalars(select(AmqpOutbox))).one()
        assert (row.status, row.attempts) == ("pending", 1)
        assert row.last_error is not None
        assert "broker away" in row.last_error


async def test_with_the_broker_away_the_store_is_still_worked(
    settings: Settings, sessions: Sessions
) -> None:
    """No broker (a closed port): the receiver threads keep retrying, the inbox is processed
    and the AppRec waits in the outbox with a failed attempt, nothing lost."""
    away = "amqp://guest:guest@127.0.0.1:1"
    settings = settings.model_copy(update={"amqp_url": away, "amqp_queues": (134197,)})
    assert consumed_queues(settings) == ["134197_async", "134197_sync", "134197_error"]
    await store_inbox(sessions, "134197_async", _envelope("m-9"), b"ok")
    stop = asyncio.Event()
    task = asyncio.create_task(AmqpRunner(settings, sessions, ByPayload(), interval=0.1).run(stop))
    try:
        for _ in range(200):
            async with sessions() as session:
                row = await session.scalar(select(AmqpOutbox))
            if row is not None and row.attempts > 0:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    assert await inbox_status(sessions, "m-9") == "done"
    assert row is not None
    assert (row.status, row.attempts) == ("pending", 1)
    with pytest.raises(Exception, match="refused"):
        Publisher(away, None).send("1_async", _envelope("x"), b"")
