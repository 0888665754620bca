"""Mails in and out of the EDI channel, without servers: what the intake is handed, the reply
re-encoded for SMTP with its signatures intact, and the oversize mail's sender check."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from app.dev.client import SendOptions, build_epj_message
from app.dev.devpki import DevPki, dev_pki
from app.ebxml.mime import parse_eml
from app.edi.mail import MailUnreadable, ebxml_mail, read_mail
from app.edi.oversize import envelope_of, read_header, signed_by
from app.replies.edi_mail import mail_address
from app.security import xmldsig

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def pki() -> DevPki:
    return dev_pki(NOW.replace(hour=0, minute=0, second=0, microsecond=0))


def _signed(pki: DevPki) -> tuple[bytes, str]:
    built = build_epj_message(
        b"<MsgHead xmlns='http://www.kith.no/xmlstds/msghead/2006-05-24'/>",
        SendOptions(from_her="8000001", sign_document=False),
        signing=pki.municipality.signing,
        encrypt_to=pki.kpr.encryption.certificate,
    )
    return built.body, built.content_type


def test_a_multipart_mail_hands_the_intake_its_body_and_content_type() -> None:
    raw = (
        b'From: a@edi.nhn.no\r\nSOAPAction: "ebXML"\r\nContent-Type: multipart/related;\r\n'
        b' boundary="b1"; type="text/xml"\r\n\r\n--b1\r\nbody'
    )
    mail = read_mail(raw)
    assert mail.body == b"--b1\r\nbody"
    assert mail.content_type == 'multipart/related; boundary="b1"; type="text/xml"'
    assert mail.soap_action == '"ebXML"'


def test_a_single_part_signal_is_decoded_from_base64() -> None:
    envelope = b"<SOAP:Envelope/>"
    raw = (
        b"Content-Type: text/xml; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(envelope)
    )
    assert read_mail(raw).body == envelope


def test_a_mail_without_a_header_block_is_unreadable() -> None:
    with pytest.raises(MailUnreadable):
        read_mail(b"x" * 100)


def test_the_ebxml_mail_keeps_every_signature_and_is_seven_bit(pki: DevPki) -> None:
    body, ctype = _signed(pki)
    mail = ebxml_mail(
        body,
        ctype,
        sender="kpr@edi.nhn.no",
        recipient="kommune@edi.nhn.no",
        message_id="m1@kpr-mottak",
        date=NOW,
    )
    assert all(len(line) <= 998 for line in mail.data.split(b"\r\n"))
    assert mail.data.isascii()
    head = mail.data.split(b"\r\n\r\n", 1)[0].decode()
    assert 'SOAPAction: "ebXML"' in head
    assert "multipart/related" in head
    assert "start=" in head
    parsed = parse_eml(mail.data)
    assert parsed.message is not None
    assert not parsed.findings
    original = parse_eml(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body).message
    assert original is not None
    assert parsed.message.soap == original.soap
    assert parsed.message.attachment_map == original.attachment_map
    checked = xmldsig.verify_envelope(parsed.message.soap, parsed.message.attachment_map)
    assert not checked.findings


def test_a_reply_that_is_no_ebxml_message_is_not_mailed() -> None:
    with pytest.raises(ValueError, match="not an ebXML message"):
        ebxml_mail(
            b"x", "multipart/related", sender="a@b.c", recipient="d@e.f", message_id="m", date=NOW
        )


def test_a_header_line_break_is_refused(pki: DevPki) -> None:
    body, ctype = _signed(pki)
    with pytest.raises(ValueError, match="line break"):
        ebxml_mail(
            body, ctype, sender="a@b.c", recipient="d@e.f\r\nBcc: x@y.z", message_id="m", date=NOW
        )


def test_the_oversize_check_knows_who_signed_the_envelope(pki: DevPki) -> None:
    body, ctype = _signed(pki)
    parsed = parse_eml(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body).message
    assert parsed is not None
    soap = parsed.soap
    read = read_header(soap)
    assert read is not None
    assert (read.from_her, read.to_her) == ("8000001", "131725")
    signer = pki.municipality.signing.certificate
    assert signed_by(soap, (signer,), NOW)
    assert not signed_by(soap, (pki.kpr.signing.certificate,), NOW)
    assert not signed_by(soap, (signer,), NOW + timedelta(days=20 * 365))
    header_changed = soap.replace(b"<eb:CPAId>kpr-pilot<", b"<eb:CPAId>kpr-pilot2<")
    assert header_changed != soap
    assert not signed_by(header_changed, (signer,), NOW)


def test_the_envelope_part_is_decoded() -> None:
    assert envelope_of(b"Content-Transfer-Encoding: base64\r\n\r\n", b"PGE+\r\n") == b"<a>"
    assert envelope_of(b"Content-Type: text/xml\r\n\r\n", b"<a>") == b"<a>"
    assert envelope_of(b"Content-Transfer-Encoding: base64\r\n\r\n", b"%%%") == b""


@pytest.mark.parametrize(
    ("endpoint", "address"),
    [
        ("mailto://example@example.com", "example@example.com"),
        ("mailto:kommune@edi.nhn.no", "kommune@edi.nhn.no"),
        ("MAILTO:k@edi.nhn.no?subject=x", "k@edi.nhn.no"),
        ("k@edi.nhn.no", "k@edi.nhn.no"),
        ("mailto:", None),
        ("mailto:a@b, c@d", None),
    ],
)
def test_the_cpa_endpoint_becomes_an_address(endpoint: str, address: str | None) -> None:
    assert mail_address(endpoint) == address


def test_a_single_part_signal_may_be_quoted_printable_or_broken() -> None:
    head = b"Content-Type: text/xml\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    assert read_mail(head + b"<a b=3D'1'/>").body == b"<a b='1'/>"
    broken = b"Content-Type: text/xml\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b"Y"
    assert read_mail(broken).body == b"Y"  # left as it is: the intake reports the envelope


def test_an_unsigned_or_unaddressed_envelope_names_nobody() -> None:
    assert read_header(b"<not-soap/>") is None
    assert not signed_by(b"<not-xml", (), NOW)
    assert not signed_by(b"<a/>", (), NOW)


def test_a_reply_mail_leaves_from_the_address_of_the_messages_environment() -> None:
    from app.edi.sender import EdiMailer, RelayConfig
    from app.platform.mailboxes import parse_mailboxes, parse_relay

    boxes = parse_mailboxes(
        "kpr@testedi.nhn.no=imaps://kpr@mail.test/INBOX,kpr@edi.nhn.no=imaps://kpr@mail.prod/INBOX"
    )
    mailer = EdiMailer(RelayConfig(parse_relay("smtp://127.0.0.1:2525")), boxes)
    assert mailer.mail_from("production") == "kpr@edi.nhn.no"
    assert mailer.mail_from("test") == "kpr@testedi.nhn.no"
    assert mailer.mail_from("pilot") == "kpr@testedi.nhn.no"  # none of its own: the first
    with pytest.raises(ValueError, match="at least one"):
        EdiMailer(RelayConfig(parse_relay("smtp://127.0.0.1:2525")), ())
