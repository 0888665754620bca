"""The EDI channel on the intake, both databases, no mail servers: a mail's MIME body through
`IntakeService.receive`, the reply into `edi_outbox` for the sender's CPA address, a mail read
twice answered once, a duplicate acknowledged again, the mailbox's environment cross-checked,
and an oversize mail refused (issue 25)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.client import read_reply
from app.dev.devpki import DevPki
from app.edi import oversize
from app.edi.handler import EdiIntake
from app.models import Message, MessageDedup
from app.platform.mailboxes import EdiMailbox
from app.platform.settings import Settings
from app.query.messages import MessageFilter, list_messages
from tests.integration.edi_support import (
    MUNICIPALITY_ADDRESS,
    PILOT_BOX,
    TEST_HER,
    ebxml_message_mail,
    edi_settings,
    edi_state,
    outbox_rows,
    register_municipality,
)

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def edi(settings_with_pki: Settings, sessions: Sessions, tmp_path: Path) -> EdiIntake:
    settings = edi_settings(settings_with_pki, tmp_path)
    await register_municipality(settings, sessions, f"mailto://{MUNICIPALITY_ADDRESS}")
    return EdiIntake(edi_state(settings, sessions))


def _box(edi: EdiIntake, address: str = PILOT_BOX) -> EdiMailbox:
    return next(b for b in edi.state.settings.edi_mailboxes if b.address == address)


async def _count(sessions: Sessions, column: object, *where: object) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count(column)).where(*where)) or 0)  # type: ignore[arg-type]


async def test_a_mail_is_answered_at_the_senders_cpa_address(
    edi: EdiIntake, sessions: Sessions, pki: DevPki
) -> None:
    handled = await edi.handle(ebxml_message_mail(pki), _box(edi))
    assert handled.committed
    assert handled.reply == "queued"
    [row] = await outbox_rows(sessions)
    assert (row.recipient, row.mail_from, row.status) == (
        MUNICIPALITY_ADDRESS,
        PILOT_BOX,
        "pending",
    )
    reply = read_reply(row.body, row.content_type, decryption=(pki.municipality.encryption,))
    assert reply.signed
    assert not reply.signature_findings
    assert reply.header is not None
    assert reply.header.acknowledgment is not None
    assert reply.apprec is not None
    assert b"AppRec" in reply.apprec
    async with sessions() as s:
        message = await s.get(Message, handled.message_id)
        assert message is not None
        assert (message.transport, message.environment) == ("ebxml-smtp", "pilot")
        listed = await list_messages(
            s, MessageFilter(transport="ebxml-smtp"), only_kommune=None, before=None, limit=10
        )
    assert [m.id for m in listed] == [handled.message_id]


async def test_a_mail_read_twice_is_answered_once(
    edi: EdiIntake, sessions: Sessions, pki: DevPki
) -> None:
    """A crash after the outbox's commit, before the mail left the mailbox: read again."""
    raw = ebxml_message_mail(pki)
    first = await edi.handle(raw, _box(edi))
    again = await edi.handle(raw, _box(edi))
    assert (first.reply, again.reply) == ("queued", "already_queued")
    assert len(await outbox_rows(sessions)) == 1
    assert await _count(sessions, MessageDedup.ebms_message_id) == 1


async def test_a_duplicate_mail_is_acknowledged_again_and_stored_once(
    edi: EdiIntake, sessions: Sessions, pki: DevPki
) -> None:
    from app.dev.client import SendOptions, build_epj_message
    from tests.integration.messages import msghead

    built = build_epj_message(
        msghead(),
        SendOptions(from_her="8000001"),
        signing=pki.municipality.signing,
        encrypt_to=pki.kpr.encryption.certificate,
    )
    body = (built.body, built.content_type)
    first = await edi.handle(ebxml_message_mail(pki, body=body), _box(edi))
    second = await edi.handle(ebxml_message_mail(pki, body=body), _box(edi))
    assert (first.reply, second.reply) == ("queued", "queued")
    one, two = await outbox_rows(sessions)
    assert one.body == two.body  # the stored reply, byte for byte
    assert await _count(sessions, MessageDedup.ebms_message_id) == 1
    assert await _count(sessions, Message.id, Message.status == "DUPLICATE") == 1


async def test_a_message_for_another_environment_is_refused_in_this_mailbox(
    edi: EdiIntake, sessions: Sessions, pki: DevPki
) -> None:
    """Signed To = the test address, mailed to the pilot mailbox: stored, refused, no mail."""
    handled = await edi.handle(ebxml_message_mail(pki, to_her=str(TEST_HER)), _box(edi))
    assert handled.committed
    assert handled.reply == "none"
    assert await outbox_rows(sessions) == []
    async with sessions() as s:
        message = await s.get(Message, handled.message_id)
    assert message is not None
    assert message.status == "MESSAGE_ERROR"


async def test_an_unauthenticated_sender_gets_no_mail(
    edi: EdiIntake, sessions: Sessions, pki: DevPki
) -> None:
    handled = await edi.handle(ebxml_message_mail(pki, from_her="8000999"), _box(edi))
    assert handled.committed
    assert handled.reply == "none"
    assert await outbox_rows(sessions) == []


async def test_garbage_is_stored_and_not_answered(edi: EdiIntake, sessions: Sessions) -> None:
    handled = await edi.handle(b"no mail at all", _box(edi))
    assert handled.committed
    assert handled.reply == "none"
    async with sessions() as s:
        message = await s.get(Message, handled.message_id)
    assert message is not None
    assert message.transport == "ebxml-smtp"


async def test_without_an_smtp_endpoint_the_reply_waits_for_the_operator(
    settings_with_pki: Settings, sessions: Sessions, tmp_path: Path, pki: DevPki
) -> None:
    settings = edi_settings(settings_with_pki, tmp_path)
    await register_municipality(settings, sessions, None)
    edi = EdiIntake(edi_state(settings, sessions))
    await edi.handle(ebxml_message_mail(pki), _box(edi))
    [row] = await outbox_rows(sessions)
    assert (row.recipient, row.status) == (None, "failed")
    assert "SMTP endpoint" in (row.last_error or "")


def _oversize_parts(raw: bytes, size: int) -> oversize.OversizeMail:
    """What the runner fetches of a mail over the limit: header block, first part."""
    head, _, body = raw.partition(b"\r\n\r\n")
    boundary = body.split(b"\r\n", 1)[0]
    first = body.split(boundary)[1].lstrip(b"\r\n")
    part_headers, _, part = first.partition(b"\r\n\r\n")
    return oversize.OversizeMail(
        size=size, head=head + b"\r\n", part_headers=part_headers + b"\r\n", part=part
    )


async def test_an_oversize_mail_from_the_party_gets_a_signed_message_error(
    edi: EdiIntake, sessions: Sessions, pki: DevPki
) -> None:
    mail = _oversize_parts(ebxml_message_mail(pki), 60_000_000)
    handled = await oversize.refuse(edi, _box(edi), mail)
    assert handled.committed
    assert handled.reply == "queued"
    [row] = await outbox_rows(sessions)
    assert row.recipient == MUNICIPALITY_ADDRESS
    reply = read_reply(row.body, row.content_type)
    assert reply.signed
    assert not reply.signature_findings
    assert reply.header is not None
    [error] = reply.header.errors
    assert "60000000" in (error.description or "")
    async with sessions() as s:
        message = await s.get(Message, handled.message_id)
    assert message is not None
    assert (message.status, message.transport) == ("TOO_LARGE", "ebxml-smtp")


async def test_an_oversize_mail_from_anyone_else_gets_nothing(
    edi: EdiIntake, sessions: Sessions, pki: DevPki
) -> None:
    stranger = _oversize_parts(ebxml_message_mail(pki, from_her="8000999"), 60_000_000)
    assert (await oversize.refuse(edi, _box(edi), stranger)).reply == "none"
    forged = _oversize_parts(ebxml_message_mail(pki), 60_000_000)
    forged = oversize.OversizeMail(
        size=forged.size,
        head=forged.head,
        part_headers=forged.part_headers,
        # the header changed under the party's signature (the CPAId)
        part=base64.encodebytes(
            base64.b64decode(b"".join(forged.part.split())).replace(b">kpr-pilot<", b">kpr-pilOt<")
        ),
    )
    assert (await oversize.refuse(edi, _box(edi), forged)).reply == "none"
    assert await outbox_rows(sessions) == []
    assert await _count(sessions, Message.id, Message.status == "TOO_LARGE") == 2
