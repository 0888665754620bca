"""Issue 24 end to end on the real intake core, through the local RabbitMQ: a sample sent
the Helsenorge way (`kpr-mottak send --amqp`) gets its AppRec on the sender's `_async`
queue; a `fromHerId` that is not the MsgHead's sender gets `abuse:spoofing-attack` on its
`_error` queue. The second tier (`broker`)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pika
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.amqp import devsender
from app.amqp.setup import declare, delete
from app.cli.amqp import send_amqp
from app.dev import devsetup
from app.dev.devpki import DevPki
from app.models import Message
from app.parties import repository as party_repo
from app.platform.settings import ReceiverEnvironment, Settings
from app.security import cms
from tests.integration.conftest import served
from tests.integration.messages import msghead

pytestmark = pytest.mark.broker

BROKER = "amqp://guest:guest@127.0.0.1:5672"
Sessions = async_sessionmaker[AsyncSession]


def _purge(*queues: str) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_purge(queue)
    finally:
        connection.close()


def _amqp_settings(settings: Settings, kpr: int) -> Settings:
    return settings.model_copy(
        update={
            "amqp_url": BROKER,
            "amqp_queues": (kpr,),
            "receivers": {kpr: ReceiverEnvironment.PILOT},
        }
    )


async def test_a_sample_gets_its_apprec_on_the_senders_async_queue(
    settings_with_pki: Settings,
    sessions: Sessions,
    demo_party: int,
    pki: DevPki,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    kpr = 90_000_000 + secrets.randbelow(9_000_000)
    declare(BROKER, [kpr, demo_party])
    _purge(f"{demo_party}_async", f"{demo_party}_error")
    request.addfinalizer(lambda: delete(BROKER, [kpr]))
    sample = tmp_path / "sample.xml"
    sample.write_bytes(msghead(3, receiver_her=kpr))
    async with served(_amqp_settings(settings_with_pki, kpr)):
        answer = await asyncio.to_thread(
            devsender.send_and_wait,
            BROKER,
            devsender.message(
                devsender.protect(sample.read_bytes(), settings_with_pki.pki_dir),
                from_her=str(demo_party),
                to_her=str(kpr),
                subject="KPR_IPL",
            ),
            from_her=str(demo_party),
            to_her=str(kpr),
            wait=60,
        )
    assert answer is not None
    assert answer.queue == f"{demo_party}_async", answer.properties
    assert answer.properties["fromHerId"] == str(kpr)
    opened = cms.decrypt_enveloped(answer.body, [pki.municipality.encryption])
    assert opened.content is not None
    signed = cms.verify_signed_data(opened.content)
    assert signed.content is not None
    assert b"AppRec" in signed.content
    async with sessions() as session:
        transports = (await session.scalars(select(Message.transport))).all()
    assert transports == ["amqp"]


async def test_a_from_her_id_not_the_msghead_sender_is_spoofing(
    settings_with_pki: Settings,
    sessions: Sessions,
    demo_party: int,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    kpr = 90_000_000 + secrets.randbelow(9_000_000)
    other = 70_000_000 + secrets.randbelow(9_000_000)  # registered, same certificates
    async with sessions() as session:
        spec = devsetup.demo_party(settings_with_pki.pki_dir, her_id=other)
        await party_repo.upsert_party(session, spec)
        await session.commit()
    declare(BROKER, [kpr, other])
    request.addfinalizer(lambda: delete(BROKER, [kpr, other]))
    sample = tmp_path / "sample.xml"
    sample.write_bytes(msghead(3, receiver_her=kpr, sender_her=demo_party))
    async with served(_amqp_settings(settings_with_pki, kpr)):
        answer = await asyncio.to_thread(
            devsender.send_and_wait,
            BROKER,
            devsender.message(
                devsender.protect(sample.read_bytes(), settings_with_pki.pki_dir),
                from_her=str(other),
                to_her=str(kpr),
                subject="KPR_IPL",
            ),
            from_her=str(other),
            to_her=str(kpr),
            wait=60,
        )
        # the CLI says the same with its exit code: 1, an error on `{other}_error`
        code = await asyncio.to_thread(
            send_amqp, sample, BROKER, str(other), str(kpr), settings_with_pki.pki_dir, 60.0
        )
    assert answer is not None
    assert answer.queue == f"{other}_error"
    assert answer.properties["errorCondition"] == "abuse:spoofing-attack"
    assert answer.properties["toHerId"] == str(other)
    assert answer.body == b""
    assert code == 1
