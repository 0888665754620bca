"""Reading a mailbox by POP3 in the first tier: a mail's first lines (what TOP gives) become
the header block and envelope part the oversize refusal reads, checked against the standard
library's MIME parser and through `oversize.refuse`; the UIDL and LIST answers; a server that
cannot be reached; and the runner over poplib against a scripted maildrop (pop3_peer.py): DELE
carried out at QUIT, a lost connection, a failed QUIT, no UIDL, long lines. Against a real
server (Dovecot over pop3s): test_edi_mailbox.py, marker `mail`."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email.message import Message as MailMessage
from pathlib import Path

import pytest
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.client import read_reply
from app.dev.devpki import DevPki
from app.edi import oversize
from app.edi.handler import EdiIntake
from app.edi.mailbox import Listed, MailboxError
from app.edi.pop3 import Pop3Mailbox, numbered, split_first_part
from app.edi.runner import EdiRunner, open_mailbox
from app.models import Message
from app.platform.settings import Settings
from tests.integration.edi_servers import free_port
from tests.integration.edi_support import (
    MUNICIPALITY_ADDRESS,
    ebxml_message_mail,
    edi_settings,
    edi_state,
    outbox_rows,
    register_municipality,
)
from tests.integration.pop3_peer import Maildrop, running_maildrop

Sessions = async_sessionmaker[AsyncSession]


def _top(raw: bytes, lines: int | None = None) -> list[bytes]:
    """The mail as poplib gives it: lines without their ends (the header block, a blank line,
    then `lines` lines of the body)."""
    found = raw.split(b"\r\n")
    if lines is None:
        return found
    blank = found.index(b"")
    return found[: blank + 1 + lines]


def _first_part(raw: bytes) -> MailMessage:
    part = email.message_from_bytes(raw).get_payload(0)
    assert isinstance(part, MailMessage)
    return part


@pytest.mark.databases("sqlite")
def test_the_first_lines_of_a_mail_give_its_headers_and_its_envelope(pki: DevPki) -> None:
    raw = ebxml_message_mail(pki)
    first = split_first_part(_top(raw), oversize.ENVELOPE_BYTES)
    assert first.head == raw[: raw.index(b"\r\n\r\n") + 2]
    part = _first_part(raw)
    soap = oversize.envelope_of(first.part_headers, first.part)
    assert soap == part.get_payload(decode=True)
    read = oversize.read_header(soap)
    assert read is not None
    assert read.from_her.endswith("8000001")
    cut = split_first_part(_top(raw), 100)
    assert cut.part == first.part[:100]
    assert cut.part_headers == first.part_headers


@pytest.mark.databases("sqlite")
def test_a_part_read_in_part_and_mails_of_other_shapes(pki: DevPki) -> None:
    raw = ebxml_message_mail(pki)
    few = split_first_part(_top(raw, 12), oversize.ENVELOPE_BYTES)
    assert few.part_headers == split_first_part(_top(raw), 10).part_headers
    assert 0 < len(few.part) < len(split_first_part(_top(raw), 1 << 20).part)
    single = b"Content-Type: text/xml\r\nContent-Transfer-Encoding: base64\r\n\r\nPGEvPg==\r\n"
    first = split_first_part(_top(single), 1000)
    assert first.part_headers == first.head
    assert oversize.envelope_of(first.part_headers, first.part) == b"<a/>"
    no_delimiter = b'Content-Type: multipart/related; boundary="b"\r\n\r\npreamble only\r\n'
    assert split_first_part(_top(no_delimiter), 1000).part == b""
    no_body = split_first_part([b"Subject: x"], 1000)
    assert (no_body.head, no_body.part) == (b"Subject: x\r\n", b"")


async def test_an_oversize_mail_read_by_top_is_refused_with_a_signed_error(
    settings_with_pki: Settings, sessions: Sessions, tmp_path: Path, pki: DevPki
) -> None:
    settings = edi_settings(settings_with_pki, tmp_path, scheme="pop3s")
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    edi = EdiIntake(edi_state(settings, sessions))
    raw = ebxml_message_mail(pki)
    first = split_first_part(_top(raw, 400), oversize.ENVELOPE_BYTES)
    mail = oversize.OversizeMail(
        size=60_000_000, head=first.head, part_headers=first.part_headers, part=first.part
    )
    handled = await oversize.refuse(edi, settings.edi_mailboxes[0], mail)
    assert handled.reply == "queued"
    again = await oversize.refuse(edi, settings.edi_mailboxes[0], mail)
    assert again.reply == "already_queued"  # read again after a crash: answered once
    [row] = await outbox_rows(sessions)
    reply = read_reply(row.body, row.content_type)
    assert reply.signed
    assert reply.header is not None
    assert [e.error_code for e in reply.header.errors] == ["DeliveryFailure"]


@pytest.mark.databases("sqlite")
def test_uidl_and_list_answers() -> None:
    assert numbered([b"1 whqtswO00WBw418f9t5JxYwZ", b"2 QhdPYR:00WBw1Ph7x7"]) == [
        (1, b"whqtswO00WBw418f9t5JxYwZ"),
        (2, b"QhdPYR:00WBw1Ph7x7"),
    ]
    for bad in ([b"x 1"], [b"1"], [b"1 "]):
        with pytest.raises(MailboxError, match="UIDL or LIST"):
            numbered(bad)


@pytest.mark.databases("sqlite")
@pytest.mark.parametrize("scheme", ["pop3", "pop3s"])
def test_a_pop3_server_that_cannot_be_reached(
    settings_with_pki: Settings, tmp_path: Path, scheme: str
) -> None:
    settings = edi_settings(settings_with_pki, tmp_path, free_port(), scheme)
    box = settings.edi_mailboxes[0]
    session = open_mailbox(box, "pilot-secret", None)
    assert isinstance(session, Pop3Mailbox)
    with pytest.raises(MailboxError, match="ConnectionRefused"):
        session.__enter__()
    session.__exit__(None, None, None)  # nothing to end
    with pytest.raises(MailboxError, match="not connected"):
        session.listed(1)
    with pytest.raises(MailboxError, match="no mail"):
        session.first_part(Listed("unknown", 1), 10)


async def test_unreachable_pop3_mailboxes_hold_up_nothing(
    settings_with_pki: Settings, sessions: Sessions, tmp_path: Path
) -> None:
    settings = edi_settings(settings_with_pki, tmp_path, free_port(), "pop3")
    await EdiRunner(edi_state(settings, sessions)).round()  # both refused: logged, no exception


@pytest.fixture
def maildrop() -> Iterator[Maildrop]:
    with running_maildrop() as drop:
        yield drop


async def _count(sessions: Sessions, *where: ColumnElement[bool]) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count(Message.id)).where(*where)) or 0)


async def test_a_maildrop_is_read_by_pop3_and_emptied_at_quit(
    settings_with_pki: Settings,
    sessions: Sessions,
    tmp_path: Path,
    pki: DevPki,
    maildrop: Maildrop,
) -> None:
    """Two messages answered; a mail with a line over poplib's 2 KiB read whole; one over the
    limit whose first lines TOP cannot read refused with nothing read, a new session going
    on with the batch; every mail removed at QUIT."""
    settings = edi_settings(
        settings_with_pki, tmp_path, maildrop.port, "pop3", max_message_bytes=40_000
    )
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    junk = b"Subject: junk\r\nContent-Type: text/plain\r\n\r\n"
    maildrop.put("a", ebxml_message_mail(pki))
    maildrop.put("b", junk + b"x" * 3_000 + b"\r\n")
    maildrop.put("c", junk + b"y" * 50_000 + b"\r\n")
    maildrop.put("d", ebxml_message_mail(pki))
    report = await EdiRunner(edi_state(settings, sessions)).poll(settings.edi_mailboxes[0])
    assert (report.read, report.kept) == (4, 0)
    assert maildrop.mails == {}
    assert await _count(sessions, Message.status == "OK") == 2
    assert await _count(sessions, Message.status == "TOO_LARGE") == 1
    assert await _count(sessions) == 4
    assert [row.recipient for row in await outbox_rows(sessions)] == [MUNICIPALITY_ADDRESS] * 2


async def test_a_connection_lost_before_quit_leaves_the_mail_to_be_answered_the_same(
    settings_with_pki: Settings,
    sessions: Sessions,
    tmp_path: Path,
    pki: DevPki,
    maildrop: Maildrop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = edi_settings(settings_with_pki, tmp_path, maildrop.port, "pop3")
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    maildrop.put("a", ebxml_message_mail(pki))
    quit_session = Pop3Mailbox.__exit__

    def connection_lost(self: Pop3Mailbox, *exc: object) -> None:
        pop, self._pop = self._pop, None
        assert pop is not None
        pop.close()  # no QUIT: the DELE is forgotten

    monkeypatch.setattr(Pop3Mailbox, "__exit__", connection_lost)
    edi = EdiRunner(edi_state(settings, sessions))
    assert (await edi.poll(settings.edi_mailboxes[0])).read == 1
    assert list(maildrop.mails) == ["a"]
    monkeypatch.setattr(Pop3Mailbox, "__exit__", quit_session)
    assert (await edi.poll(settings.edi_mailboxes[0])).read == 1
    assert maildrop.mails == {}
    assert await _count(sessions, Message.status == "DUPLICATE") == 1
    assert len(await outbox_rows(sessions)) == 1  # answered once


async def test_a_failed_quit_and_a_server_without_uidl_are_reported(
    settings_with_pki: Settings,
    sessions: Sessions,
    tmp_path: Path,
    pki: DevPki,
    maildrop: Maildrop,
) -> None:
    settings = edi_settings(settings_with_pki, tmp_path, maildrop.port, "pop3")
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    maildrop.put("a", ebxml_message_mail(pki))
    edi = EdiRunner(edi_state(settings, sessions))
    maildrop.quit_ok = False
    with pytest.raises(MailboxError, match=r"QUIT: .*-ERR.*the removals may be undone"):
        await edi.poll(settings.edi_mailboxes[0])
    assert list(maildrop.mails) == ["a"]
    maildrop.quit_ok, maildrop.uidl = True, False
    with pytest.raises(MailboxError, match=r"UIDL: .*-ERR not here"):
        await edi.poll(settings.edi_mailboxes[0])
    await edi.round()  # logged, no exception
    maildrop.uidl = True
    await edi.round()
    assert maildrop.mails == {}
