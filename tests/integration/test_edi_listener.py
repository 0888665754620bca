"""Mail an MTA hands over directly (`KPR_EDI_LISTEN`, issue 25): a real LMTP/SMTP listener on
loopback, a real client (aiosmtplib, the standard library's LMTP), both databases. 250 only
once the outcome is stored and the reply queued; 550 for an address KPR does not serve here;
one recipient per transaction; a mail over the limit refused as the mailbox reader refuses it."""

from __future__ import annotations

import asyncio
import smtplib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import undefer

from app.dev.devpki import DevPki
from app.edi import oversize
from app.edi.listener import EdiListeners, oversize_of, start_listeners
from app.models import Message
from app.platform.mailboxes import parse_listen
from app.platform.settings import Settings
from app.replies.models import EdiOutbox
from tests.integration.edi_support import (
    MUNICIPALITY_ADDRESS,
    PILOT_BOX,
    ebxml_message_mail,
    edi_settings,
    edi_state,
    register_municipality,
)

Sessions = async_sessionmaker[AsyncSession]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _listening(
    settings_with_pki: Settings, sessions: Sessions, tmp_path: Path, protocol: str, **more: object
) -> tuple[EdiListeners, int]:
    port = _free_port()
    listen = parse_listen(f"{PILOT_BOX}={protocol}://127.0.0.1:{port}?environment=pilot")
    settings = edi_settings(settings_with_pki, tmp_path, edi_listen=listen).model_copy(update=more)
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    return await start_listeners(edi_state(settings, sessions)), port


@pytest.fixture
async def smtp_port(
    settings_with_pki: Settings, sessions: Sessions, tmp_path: Path
) -> AsyncIterator[int]:
    listeners, port = await _listening(settings_with_pki, sessions, tmp_path, "smtp")
    yield port
    await listeners.close()


async def _rows(sessions: Sessions) -> tuple[list[Message], list[EdiOutbox]]:
    async with sessions() as s:
        messages = list((await s.scalars(select(Message).order_by(Message.id))).all())
        outbox = list(
            (
                await s.scalars(
                    select(EdiOutbox).options(undefer(EdiOutbox.body)).order_by(EdiOutbox.id)
                )
            ).all()
        )
    return messages, outbox


async def _send(port: int, mail: bytes, recipients: list[str]) -> tuple[dict[str, object], str]:
    refused, answer = await aiosmtplib.send(
        mail, sender="msh@kommune.example", recipients=recipients, hostname="127.0.0.1", port=port
    )
    return dict(refused), answer


async def test_a_mail_handed_over_is_stored_before_the_250(
    smtp_port: int, sessions: Sessions, pki: DevPki
) -> None:
    refused, answer = await _send(smtp_port, ebxml_message_mail(pki), [PILOT_BOX])
    assert refused == {}
    messages, outbox = await _rows(sessions)
    [message] = messages
    assert f"Stored as message {message.id}" in answer
    assert (message.transport, message.status) == ("ebxml-smtp", "OK")
    [reply] = outbox
    assert (reply.recipient, reply.mail_from, reply.message_id) == (
        MUNICIPALITY_ADDRESS,
        PILOT_BOX,
        message.id,
    )


async def test_the_same_mail_handed_over_twice_is_answered_once(
    smtp_port: int, sessions: Sessions, pki: DevPki
) -> None:
    mail = ebxml_message_mail(pki)
    await _send(smtp_port, mail, [PILOT_BOX])
    await _send(smtp_port, mail, [PILOT_BOX])  # the MTA's retry after a lost 250
    messages, outbox = await _rows(sessions)
    assert [m.status for m in messages] == ["OK", "DUPLICATE"]
    assert len(outbox) == 1


async def test_an_address_kpr_does_not_serve_here_is_refused(
    smtp_port: int, sessions: Sessions, pki: DevPki
) -> None:
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await _send(smtp_port, ebxml_message_mail(pki), ["someone@edi.test"])
    assert refused.value.recipients[0].code == 550
    assert await _rows(sessions) == ([], [])


async def test_a_second_recipient_waits_for_its_own_transaction(
    smtp_port: int, sessions: Sessions, pki: DevPki
) -> None:
    refused, _ = await _send(smtp_port, ebxml_message_mail(pki), [PILOT_BOX, "kpr@test.edi.test"])
    assert {k: v[0] for k, v in refused.items()} == {"kpr@test.edi.test": 452}  # type: ignore[index]
    messages, _ = await _rows(sessions)
    assert len(messages) == 1


async def test_lmtp_answers_after_the_commit(
    settings_with_pki: Settings, sessions: Sessions, tmp_path: Path, pki: DevPki
) -> None:
    listeners, port = await _listening(settings_with_pki, sessions, tmp_path, "lmtp")
    mail = ebxml_message_mail(pki)

    def deliver() -> dict[str, tuple[int, bytes]]:
        with smtplib.LMTP("127.0.0.1", port) as client:
            return client.sendmail("msh@kommune.example", [PILOT_BOX], mail)

    try:
        assert await asyncio.to_thread(deliver) == {}
    finally:
        await listeners.close()
    messages, outbox = await _rows(sessions)
    assert [m.status for m in messages] == ["OK"]
    assert len(outbox) == 1


async def test_a_mail_over_the_limit_is_refused_as_the_mailbox_reader_refuses_it(
    settings_with_pki: Settings, sessions: Sessions, tmp_path: Path, pki: DevPki
) -> None:
    mail = ebxml_message_mail(pki)
    listeners, port = await _listening(
        settings_with_pki, sessions, tmp_path, "smtp", max_message_bytes=len(mail) - 1
    )
    try:
        refused, answer = await _send(port, mail, [PILOT_BOX])
    finally:
        await listeners.close()
    assert refused == {}
    assert answer.startswith("2.0.0 Stored")
    messages, outbox = await _rows(sessions)
    assert [m.status for m in messages] == ["TOO_LARGE"]
    [reply] = outbox  # the sender signed the envelope: a MessageError by mail
    assert reply.recipient == MUNICIPALITY_ADDRESS
    assert b"MessageError" in reply.body


def test_the_parts_of_a_large_mail_are_found_without_a_parser(pki: DevPki) -> None:
    parts = oversize_of(ebxml_message_mail(pki))
    assert b"multipart/related" in parts.head.lower()
    assert b"Envelope" in oversize.envelope_of(parts.part_headers, parts.part)
