"""Duplicates through POST /ebms: a resend gets the stored reply byte for byte and is not
processed again; a reused MessageId with other content is `Inconsistent`; and many clients
posting the same message at once against PostgreSQL find one stored message."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import undefer

from app import migrate
from app.apprec.parse import parse_apprec
from app.dev import devsetup
from app.dev.client import SendOptions, build_ebxml, prepare_payload
from app.dev.devpki import DevPki, write_dev_pki
from app.main import create_app
from app.models import (
    Finding,
    IplosNotification,
    Message,
    MessageDedup,
    MessageEvent,
    NotificationOutbox,
    Receipt,
)
from app.parties import repository as party_repo
from app.platform.db import create_engine, session_factory
from app.platform.settings import Env, Settings
from tests.integration.databases import dispose_database, fresh_database
from tests.integration.messages import DEMO_HER, epj_message, msghead, post, reply_of
from tests.integration.test_intake_transport import (
    assert_accepted,
    assert_single_error,
    assert_stored_error,
    chained_heads,
)


async def _messages(sessions: async_sessionmaker[AsyncSession]) -> list[Message]:
    async with sessions() as s:
        return list(
            await s.scalars(select(Message).order_by(Message.id).options(undefer(Message.raw)))
        )


async def _count(sessions: async_sessionmaker[AsyncSession], model: type[object]) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_identical_resend_gets_the_stored_reply_and_is_not_processed_again(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    built = epj_message(pki)
    first = await post(intake, built)
    assert_accepted(pki, first)
    notifications = await _count(sessions, IplosNotification)
    outbox = await _count(sessions, NotificationOutbox)
    assert notifications > 0

    again = await post(intake, built)

    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    original, resend = await _messages(sessions)
    assert original.status == "OK"
    assert resend.status == "DUPLICATE"
    assert resend.raw == built.body
    assert resend.ebms_message_id == built.message_id
    async with sessions() as s:
        receipts = list(await s.scalars(select(Receipt)))
        assert [r.message_id for r in receipts] == [original.id]
        dedup = (await s.scalars(select(MessageDedup))).one()
        assert dedup.message_id == original.id
        kinds = list(
            await s.scalars(select(MessageEvent.kind).where(MessageEvent.message_id == resend.id))
        )
        # A resend is authenticated before it may match a claim, but never validated again.
        assert "duplicate" in kinds
        assert "signature_checked" in kinds
        assert "validated" not in kinds
    assert await _count(sessions, IplosNotification) == notifications
    assert await _count(sessions, NotificationOutbox) == outbox


async def test_resend_with_an_overlong_message_id_gets_the_stored_reply(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Longer than the dedup column: the claim key must still tell it apart and find it.
    one, two = chained_heads(2)
    long_id = "x" * 700 + "@epj.example"
    built = epj_message(pki, one, message_id=long_id)
    first = await post(intake, built)
    assert_accepted(pki, first)
    again = await post(intake, built)
    assert again.content == first.content
    # Another id with the same first 500 characters is another message.
    assert_accepted(pki, await post(intake, epj_message(pki, two, message_id=long_id + ".2")))
    assert [m.status for m in await _messages(sessions)] == ["OK", "DUPLICATE", "OK"]


async def test_resend_with_other_mime_framing_is_the_same_message(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # An MSH may re-frame a retry (here: base64 instead of binary for the SOAP part); the
    # envelope and payload are the same bytes, so it is the same message.
    payload = prepare_payload(
        msghead(), signing=pki.municipality.signing, encrypt_to=pki.kpr.encryption.certificate
    )
    options = SendOptions(
        from_her=DEMO_HER,
        message_id=f"{uuid.uuid4()}@epj.example",
        conversation_id=str(uuid.uuid4()),
        timestamp=datetime.now(UTC),
    )
    binary = build_ebxml(payload, options, pki.municipality.signing)
    base64 = build_ebxml(payload, replace(options, soap_cte="base64"), pki.municipality.signing)
    assert binary.body != base64.body
    assert binary.soap == base64.soap

    first = await post(intake, binary)
    assert_accepted(pki, first)
    again = await post(intake, base64)
    assert again.content == first.content
    assert [m.status for m in await _messages(sessions)] == ["OK", "DUPLICATE"]


async def test_resend_of_a_refused_message_is_checked_again(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Refused before the sender was authenticated: no claim, so a corrected resend with the
    # same MessageId can be processed; an unchanged one is refused again, for the same reason.
    built = epj_message(pki, time_to_live=datetime.now(UTC) - timedelta(minutes=1))
    first = await post(intake, built)
    assert_single_error(first, "EBMS-TTL-EXPIRED", "TimeToLiveExpired")
    again = await post(intake, built)
    assert_single_error(again, "EBMS-TTL-EXPIRED", "TimeToLiveExpired")
    assert [m.status for m in await _messages(sessions)] == ["MESSAGE_ERROR", "MESSAGE_ERROR"]
    assert await _count(sessions, Receipt) == 2
    assert await _count(sessions, MessageDedup) == 0


async def test_a_forged_from_cannot_take_a_partys_message_id(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    message_id = f"{uuid.uuid4()}@epj.example"
    real = epj_message(pki, message_id=message_id)
    # Someone else posts the party's MessageId first, signed with a key that is not theirs.
    forged = epj_message(pki, msghead(), message_id=message_id)
    forged_body = forged.body.replace(b"<ds:SignatureValue>", b"<ds:SignatureValue>AAAA", 1)
    assert forged_body != forged.body
    refused = await intake.post("/ebms", content=forged_body, headers=forged.http_headers)
    assert b"MessageError" in refused.content
    assert_accepted(pki, await post(intake, real))
    assert await _count(sessions, MessageDedup) == 1


async def test_same_message_id_with_other_content_is_inconsistent(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    message_id = f"{uuid.uuid4()}@epj.example"
    original = epj_message(pki, message_id=message_id)
    assert_accepted(pki, await post(intake, original))
    other = epj_message(pki, msghead(), message_id=message_id)
    assert other.body != original.body

    r = await post(intake, other)

    error = assert_single_error(r, "EBMS-DUPLICATE-INCONSISTENT", "Inconsistent")
    assert "eb:MessageId" in (error.location or "")
    assert message_id in (error.description or "")
    stored = await assert_stored_error(
        sessions, r, "EBMS-DUPLICATE-INCONSISTENT", authenticated=True
    )
    assert stored.ebms_message_id == message_id
    async with sessions() as s:
        dedup = (await s.scalars(select(MessageDedup))).one()
        first = (await s.scalars(select(Message).where(Message.status == "OK"))).one()
        assert dedup.message_id == first.id
        # The original's findings are untouched: only the reuse is an error.
        rules = list(await s.scalars(select(Finding.rule_id).where(Finding.message_id == first.id)))
        assert "EBMS-DUPLICATE-INCONSISTENT" not in rules


async def test_same_message_id_from_another_sender_is_not_a_duplicate(
    intake: httpx.AsyncClient,
    pki: DevPki,
    settings_with_pki: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    other = devsetup.demo_party(settings_with_pki.pki_dir, her_id=8000002, kommune="0302")
    async with sessions() as s:
        await party_repo.upsert_party(s, other)
        await s.commit()
    message_id = f"{uuid.uuid4()}@epj.example"

    first = await post(intake, epj_message(pki, message_id=message_id))
    second = await post(
        intake,
        epj_message(
            pki,
            msghead(sender_her=8000002, kommune="0302"),
            from_her="8000002",
            message_id=message_id,
        ),
    )

    assert_accepted(pki, first)
    assert_accepted(pki, second)
    assert first.content != second.content
    assert [m.status for m in await _messages(sessions)] == ["OK", "OK"]
    async with sessions() as s:
        claims = {
            (d.from_party_id, d.ebms_message_id) for d in await s.scalars(select(MessageDedup))
        }
    assert claims == {(DEMO_HER, message_id), ("8000002", message_id)}


# --- concurrency: PostgreSQL, several app instances (engines), like several processes --------

APPS = 4
CLIENTS = 16


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """A migrated PostgreSQL database of its own (skips without a server, fails in CI)."""
    url = fresh_database("postgresql", tmp_path)
    migrate.upgrade(url)
    yield url
    dispose_database(url)


@pytest.mark.postgres
async def test_same_message_from_many_clients_at_once_is_stored_once(
    postgres_url: str, pki: DevPki, tmp_path: Path
) -> None:
    settings = Settings(
        _env_file=None,
        env=Env.TEST,
        database_url=postgres_url,
        pki_dir=tmp_path / "pki",
        log_format="json",
    )
    write_dev_pki(settings.pki_dir, pki)
    engine = create_engine(postgres_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as s:
            await party_repo.upsert_party(s, devsetup.demo_party(settings.pki_dir))
            await s.commit()
        built = epj_message(pki)
        async with AsyncExitStack() as stack:
            clients: list[httpx.AsyncClient] = []
            for _ in range(APPS):
                application = create_app(settings)
                await stack.enter_async_context(application.router.lifespan_context(application))
                clients.append(
                    await stack.enter_async_context(
                        httpx.AsyncClient(
                            transport=httpx.ASGITransport(app=application),
                            base_url="http://kpr.test",
                        )
                    )
                )
            replies = await asyncio.gather(
                *(post(clients[n % APPS], built) for n in range(CLIENTS))
            )

        assert {r.status_code for r in replies} == {200}
        assert len({r.content for r in replies}) == 1
        assert_accepted(pki, replies[0])
        header = reply_of(pki, replies[0]).header
        assert header is not None
        assert header.ref_to_message_id == built.message_id

        messages = await _messages(sessions)
        assert len(messages) == CLIENTS
        originals = [m for m in messages if m.status != "DUPLICATE"]
        assert [m.status for m in originals] == ["OK"]
        async with sessions() as s:
            dedup = (await s.scalars(select(MessageDedup))).one()
            receipt = (
                await s.scalars(
                    select(Receipt).options(undefer(Receipt.body), undefer(Receipt.apprec_xml))
                )
            ).one()
        assert dedup.message_id == originals[0].id
        assert receipt.message_id == originals[0].id
        assert receipt.body == replies[0].content
        apprec = parse_apprec(receipt.apprec_xml or b"")
        assert apprec.status == "1"
    finally:
        await engine.dispose()
