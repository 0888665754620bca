"""Mails in and out of the EDI channel, pure: bytes in, bytes out.

In: a mail's MIME body is what `POST /ebms` takes, so a mail becomes the intake's body and
Content-Type. A single-part mail (an ebMS signal) may carry its envelope base64- or
quoted-printable-encoded; it is decoded here, since a request body has no transfer encoding.
Mail headers are not signed: apart from the framing (Content-Type, Content-Transfer-Encoding)
they decide nothing.

Out: a reply is the bytes the synchronous HTTP reply would carry, with every part re-encoded
as base64 (binary CMS does not survive SMTP; the signatures cover the decoded parts, so they
stay valid), in a mail with `SOAPAction: "ebXML"` and `multipart/related` with `start`.
"""

from __future__ import annotations

import binascii
import email.utils
import re
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32

from app.ebxml.build import SOAP_ACTION, mail_safe
from app.ebxml.mime import parse_body

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_SOAP_TYPES = ("text/xml", "application/xml")
# headers a reply mail gets from us; a value may hold no line break
_BREAK = re.compile(r"[\r\n]")


class MailUnreadable(ValueError):
    """The mail has no header block we can read (the intake gets it as it is then)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingMail:
    body: bytes  # what the intake reads, as if POSTed
    content_type: str | None
    soap_action: str | None


def read_mail(raw: bytes, *, max_header_bytes: int = 64 * 1024) -> IncomingMail:
    """The mail's header block and body; MailUnreadable when there is no header block."""
    end = _HEADER_END.search(raw, 0, max_header_bytes + 4)
    if end is None:
        raise MailUnreadable("no blank line after the mail headers")
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw[: end.start()])
        ctype = _flat(headers.get("Content-Type"))
        cte = (_flat(headers.get("Content-Transfer-Encoding")) or "7bit").lower()
        action = _flat(headers.get("SOAPAction"))
    except Exception as exc:  # hostile header bytes: never raise anything but ours
        raise MailUnreadable("the mail headers cannot be read") from exc
    body = raw[end.end() :]
    if ctype is not None and ctype.split(";")[0].strip().lower() in _SOAP_TYPES:
        body = _decoded(cte, body)
    return IncomingMail(body=body, content_type=ctype, soap_action=action)


def _flat(value: object) -> str | None:
    return " ".join(str(value).split()) if value is not None else None


def _decoded(cte: str, body: bytes) -> bytes:
    """A single-part envelope's transfer encoding undone; left as it is when it cannot be
    (the intake then reports the envelope it cannot read)."""
    try:
        if cte == "base64":
            return binascii.a2b_base64(body)
        if cte == "quoted-printable":
            return binascii.a2b_qp(body)
    except (binascii.Error, ValueError):
        return body
    return body


@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingMail:
    sender: str
    recipient: str
    data: bytes  # the whole RFC 5322 message, CRLF line ends


def ebxml_mail(
    reply_body: bytes,
    reply_content_type: str,
    *,
    sender: str,
    recipient: str,
    message_id: str,
    date: datetime,
) -> OutgoingMail:
    """A mail that carries an ebXML message: our reply (Acknowledgment with AppRec, or a
    MessageError), or, from `send --smtp`, a message as a municipality's MSH mails it."""
    parsed = parse_body(reply_body, reply_content_type, max_parts=16)
    if parsed.message is None:
        raise ValueError("not an ebXML message: " + "; ".join(f.detail for f in parsed.findings))
    body, content_type, cte = mail_safe(parsed.message)
    headers = [
        ("From", sender),
        ("To", recipient),
        ("Date", email.utils.format_datetime(date)),
        ("Message-ID", f"<{message_id}>"),
        ("Subject", "ebXML"),
        ("MIME-Version", "1.0"),
        ("SOAPAction", SOAP_ACTION),
        ("Content-Type", content_type),
    ]
    if cte is not None:
        headers.append(("Content-Transfer-Encoding", cte))
    for name, value in headers:
        if _BREAK.search(value):
            raise ValueError(f"the {name} header may not hold a line break")
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode("ascii")
    return OutgoingMail(sender=sender, recipient=recipient, data=head + b"\r\n" + body)
