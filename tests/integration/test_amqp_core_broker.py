"""Issue 24 end to end on the real intake core, through the local RabbitMQ: a sample sent
the Helsenorge way (`kpr-mottak send --amqp`) gets its AppRec on the sender's `_async`
queue; a `fromHerId` that is not the MsgHead's sender gets `abuse:spoofing-attack`, and a
signer certificate that is revoked, expired, from an unknown CA or missing gets the matching
`transport:*-certificate` condition on its `_error` queue, no AppRec. The second tier
(`broker`)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from cryptography.hazmat.primitives import serialization
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
from app.security.keys import KeyPair
from tests.integration.conftest import served
from tests.integration.messages import msghead
from tests.integration.test_intake_security import (
    expired_signing,
    foreign_signing,
    register,
    write_crl,
)

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


@pytest.fixture
def kpr() -> Iterator[int]:
    """A fresh KPR HER-id with its queues (deleted after the test)."""
    her = 90_000_000 + secrets.randbelow(9_000_000)
    declare(BROKER, [her])
    yield her
    delete(BROKER, [her])


def _amqp_settings(settings: Settings, kpr: int) -> Settings:
    return settings.model_copy(
        update={
            "amqp_url": BROKER,
            "amqp_queues": (kpr,),
            "receivers": {kpr: ReceiverEnvironment.PILOT},
        }
    )


async def _exchange(
    settings: Settings, sample: bytes, *, kpr: int, sender: int, **protect: object
) -> devsender.Answer | None:
    """`sample` protected from the dev PKI (`protect`: devsender.protect's options), sent
    from `sender` to KPR on a served app; the first answer on the sender's queues."""
    declare(BROKER, [sender])
    _purge(f"{sender}_async", f"{sender}_error")
    body = devsender.protect(sample, settings.pki_dir, **protect)  # type: ignore[arg-type]
    sent = devsender.message(body, from_her=str(sender), to_her=str(kpr), subject="KPR_IPL")
    async with served(_amqp_settings(settings, kpr)):
        return await asyncio.to_thread(
            devsender.send_and_wait, BROKER, sent, from_her=str(sender), to_her=str(kpr), wait=60
        )


def _keep_signer(pki_dir: Path, name: str, pair: KeyPair) -> str:
    """Write a signing key pair beside the dev PKI as `{name}.key`/`.crt`; returns `name`."""
    key = pair.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (pki_dir / f"{name}.key").write_bytes(key)
    (pki_dir / f"{name}.crt").write_bytes(pair.certificate.public_bytes(serialization.Encoding.PEM))
    return name


async def test_a_sample_gets_its_apprec_on_the_senders_async_queue(
    settings_with_pki: Settings, sessions: Sessions, demo_party: int, pki: DevPki, kpr: int
) -> None:
    sample = msghead(3, receiver_her=kpr)
    answer = await _exchange(settings_with_pki, sample, kpr=kpr, sender=demo_party)
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
    settings_with_pki: Settings, sessions: Sessions, demo_party: int, kpr: int, tmp_path: Path
) -> None:
    other = 70_000_000 + secrets.randbelow(9_000_000)  # registered, same certificates
    async with sessions() as session:
        spec = devsetup.demo_party(settings_with_pki.pki_dir, her_id=other)
        await party_repo.upsert_party(session, spec)
        await session.commit()
    sample = tmp_path / "sample.xml"
    sample.write_bytes(msghead(3, receiver_her=kpr, sender_her=demo_party))
    try:
        answer = await _exchange(settings_with_pki, sample.read_bytes(), kpr=kpr, sender=other)
        # the CLI says the same with its exit code: 1, an error on `{other}_error`
        async with served(_amqp_settings(settings_with_pki, kpr)):
            code = await asyncio.to_thread(
                send_amqp, sample, BROKER, str(other), str(kpr), settings_with_pki.pki_dir, 60.0
            )
    finally:
        delete(BROKER, [other])
    assert answer is not None
    assert answer.queue == f"{other}_error"
    assert answer.properties["errorCondition"] == "abuse:spoofing-attack"
    assert answer.properties["toHerId"] == str(other)
    assert answer.body == b""
    assert code == 1


@pytest.mark.parametrize(
    "case", ["revoked", "expired", "unverified", "missing"], ids=lambda c: str(c)
)
async def test_a_bad_signer_certificate_gets_its_condition_on_the_error_queue(
    case: str,
    settings_with_pki: Settings,
    sessions: Sessions,
    demo_party: int,
    pki: DevPki,
    kpr: int,
) -> None:
    """The dev PKI's CRL revoking the municipality's signing certificate, a registered one
    that expired yesterday, one from a CA KPR does not trust, SignedData without the
    signer's certificate: Helsenorge's receiver answers each on `_error`, and so do we."""
    pki_dir = settings_with_pki.pki_dir
    protect: dict[str, object] = {}
    if case == "revoked":
        write_crl(pki, pki_dir, revoked=(pki.municipality.signing.certificate.serial_number,))
    elif case == "expired":
        expired = expired_signing(pki)
        await register(sessions, settings_with_pki, signing=(expired.certificate,))
        protect["signer"] = _keep_signer(pki_dir, "expired-signing", expired)
    elif case == "unverified":
        protect["signer"] = _keep_signer(pki_dir, "foreign-signing", foreign_signing())
    else:
        protect["with_certificate"] = False
    sample = msghead(3, receiver_her=kpr)
    answer = await _exchange(settings_with_pki, sample, kpr=kpr, sender=demo_party, **protect)
    assert answer is not None
    assert answer.queue == f"{demo_party}_error", answer.properties
    assert answer.properties["errorCondition"] == f"transport:{case}-certificate"
    assert answer.properties["originalMessageId"]
    assert answer.body == b""
    async with sessions() as session:
        statuses = (await session.scalars(select(Message.status))).all()
    assert statuses == ["MESSAGE_ERROR"]
