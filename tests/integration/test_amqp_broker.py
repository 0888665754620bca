"""Through the local RabbitMQ (AMQP 1.0 plugin): stored before accepted, answered on the
sender's queues. The second tier (`broker`); the port is a stand-in for the intake core."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from proton.utils import BlockingConnection
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.amqp.envelope import Envelope
from app.amqp.link import Publisher, connect, from_proton, receiver_address
from app.amqp.repository import inbox_status
from app.amqp.runner import AmqpRunner
from app.amqp.setup import declare, delete
from app.cli.amqp import send_amqp
from app.dev.devpki import DevPki
from app.models import AmqpInbox
from app.platform.settings import Settings
from app.security import cms
from tests.integration.conftest import served
from tests.integration.test_amqp_inbox import ByPayload, _envelope

pytestmark = pytest.mark.broker

BROKER = os.environ.get("KPR_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")


@pytest.fixture
def her_ids() -> Iterator[tuple[int, int]]:
    """A fresh pair (KPR, sender) of HER-ids: the tests' queues never meet."""
    kpr, sender = (
        90_000_000 + secrets.randbelow(9_000_000),
        80_000_000 + secrets.randbelow(9_000_000),
    )
    declare(BROKER, [kpr, sender])
    yield kpr, sender
    delete(BROKER, [kpr, sender])  # quorum queues are not free on a small broker


def _receive(connection: BlockingConnection, queue: str) -> tuple[Envelope, bytes]:
    receiver = connection.create_receiver(receiver_address(queue), credit=1)
    message = receiver.receive(timeout=30)
    receiver.accept()
    return from_proton(message)


async def test_a_message_gets_its_answer_on_the_senders_queues(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], her_ids: tuple[int, int]
) -> None:
    kpr, sender = her_ids
    settings = settings.model_copy(update={"amqp_url": BROKER, "amqp_queues": (kpr,)})
    runner = AmqpRunner(settings, sessions, ByPayload(), interval=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    publisher = Publisher(BROKER, None)
    good = _envelope("ok-1", fromHerId=str(sender), toHerId=str(kpr))
    spoof = _envelope("spoof-1", fromHerId=str(sender), toHerId=str(kpr))
    try:
        await asyncio.to_thread(publisher.send, f"{kpr}_async", good, b"ok")
        await asyncio.to_thread(publisher.send, f"{kpr}_async", spoof, b"spoof")
        connection = await asyncio.to_thread(connect, BROKER, None)
        try:
            apprec, body = await asyncio.to_thread(_receive, connection, f"{sender}_async")
            error, empty = await asyncio.to_thread(_receive, connection, f"{sender}_error")
        finally:
            connection.close()
    finally:
        publisher.close()
        stop.set()
        await task
    assert (apprec.correlation_id, body) == ("ok-1", b"apprec:ok")
    assert apprec.application["fromHerId"] == str(kpr)
    assert error.application["errorCondition"] == "abuse:spoofing-attack"
    assert error.application["originalMessageId"] == "spoof-1"
    assert empty == b""
    assert await inbox_status(sessions, "ok-1") == "done"


async def test_the_service_receives_from_its_queues_when_configured(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], her_ids: tuple[int, int]
) -> None:
    """KPR_AMQP_URL set: the app's lifespan runs the receiver; the message is in the inbox,
    accepted on the broker, before any processing."""
    kpr, sender = her_ids
    settings = settings.model_copy(update={"amqp_url": BROKER, "amqp_queues": (kpr,)})
    publisher = Publisher(BROKER, None)
    async with served(settings):
        try:
            envelope = _envelope("svc-1", fromHerId=str(sender), toHerId=str(kpr))
            await asyncio.to_thread(publisher.send, f"{kpr}_async", envelope, b"\x30\x80")
        finally:
            publisher.close()
        for _ in range(300):
            if await inbox_status(sessions, "svc-1") is not None:
                break
            await asyncio.sleep(0.1)
    assert await inbox_status(sessions, "svc-1") is not None


async def test_send_amqp_the_helsenorge_way(
    settings_with_pki: Settings,
    sessions: async_sessionmaker[AsyncSession],
    her_ids: tuple[int, int],
    pki: DevPki,
    tmp_path: Path,
) -> None:
    """`kpr-mottak send --amqp`: its own CMS (signed, then `openssl cms` encrypted) opens with
    the receiver's CMS code; the AppRec comes back on the sender's `_async` queue."""
    kpr, sender = her_ids
    settings = settings_with_pki.model_copy(update={"amqp_url": BROKER, "amqp_queues": (kpr,)})
    msghead = tmp_path / "msghead.xml"
    msghead.write_bytes(b"<MsgHead/>")
    stop = asyncio.Event()
    task = asyncio.create_task(AmqpRunner(settings, sessions, ByPayload(), interval=0.5).run(stop))
    try:
        code = await asyncio.to_thread(
            send_amqp, msghead, BROKER, str(sender), str(kpr), settings.pki_dir, 30.0
        )
    finally:
        stop.set()
        await task
    assert code == 0
    async with sessions() as session:
        body = (await session.scalars(select(AmqpInbox.body))).one()
    opened = cms.decrypt_enveloped(body, [pki.kpr.encryption])
    assert opened.content is not None
    signed = cms.verify_signed_data(opened.content)
    assert signed.content == b"<MsgHead/>"
    assert signed.signer == pki.municipality.signing.certificate
