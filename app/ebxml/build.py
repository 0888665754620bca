"""Builders for outgoing ebMS 2.0 messages: a business message (as an EPJ's MSH sends it), the
reply with Acknowledgment + AppRec, the MessageError signal and a standalone Acknowledgment.

Output is deterministic for the same input (boundary and default Content-IDs are derived from
the content), so the exact bytes can be stored and resent byte for byte. Signing is plugged in:
`sign(envelope, attachments)` must insert a ds:Signature into SOAP:Header; it is called on the
finished tree right before serialisation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from lxml import etree

from app.core.cid import cid_uri
from app.core.findings import Finding, Severity
from app.core.xmlparse import parse_xml, xml_safe
from app.ebxml.envelope import (
    ACTION_ACKNOWLEDGMENT,
    ACTION_MESSAGE_ERROR,
    ACTOR_TO_PARTY_MSH,
    EB_NS,
    SIGNAL_SERVICE,
    SOAP_NS,
    XLINK_NS,
    XML_NS,
    Description,
    EbmsHeader,
    Party,
    PartyId,
    ReplyContext,
    Service,
)
from app.ebxml.mime import MimeMessage

# A signer gets the finished envelope and the attachments (content id -> bytes) and returns
# the signed envelope (a new tree, or the same one signed in place).
Signer = Callable[[etree._Element, Mapping[str, bytes]], etree._Element]
Cte = Literal["binary", "8bit", "7bit", "base64", "quoted-printable"]

ACTION_APPREC = "APPREC"
SOAP_ACTION = '"ebXML"'
ERROR_CODE_CONTEXT = "urn:oasis:names:tc:ebxml-msg:service:errors"
_NSMAP = {"SOAP": SOAP_NS, "eb": EB_NS, "xlink": XLINK_NS}
_REFS_MARK = "kpr-mottak:ds-references"


@dataclass(frozen=True, slots=True)
class Payload:
    data: bytes
    content_type: str  # e.g. 'application/pkcs7-mime; smime-type=enveloped-data' or 'text/xml'
    content_id: str | None = None  # without <>; derived from the data when None
    cte: Cte = "binary"


@dataclass(frozen=True, slots=True)
class BuiltMessage:
    body: bytes  # the HTTP body (or the MIME body of a mail)
    content_type: str  # the Content-Type header value that goes with `body`
    soap: bytes  # the serialised envelope (what a signature covers)
    message_id: str
    soap_content_id: str | None

    @property
    def http_headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type, "SOAPAction": SOAP_ACTION}


def her_party(her_id: str, role: str | None = None) -> Party:
    """A Party with one HER PartyId, the Norwegian profile's usual address."""
    return Party((PartyId(her_id, "HER"),), role)


def format_timestamp(value: datetime) -> str:
    """xs:dateTime in UTC with milliseconds and 'Z' (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _digest_id(prefix: str, *chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(len(c).to_bytes(8, "big"))
        h.update(c)
    return f"{prefix}-{h.hexdigest()[:24]}@kpr-mottak"


def _eb(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{EB_NS}}}{name}")
    if text is not None:
        el.text = xml_safe(text)  # echoed sender values may hold control characters
    return el


def _header_block(parent: etree._Element, name: str) -> etree._Element:
    el = _eb(parent, name)
    el.set(f"{{{SOAP_NS}}}mustUnderstand", "1")
    el.set(f"{{{EB_NS}}}version", "2.0")
    return el


def _party(parent: etree._Element, name: str, party: Party) -> None:
    if not party.party_ids:
        raise ValueError(f"eb:{name} needs at least one PartyId")
    el = _eb(parent, name)
    for pid in party.party_ids:
        p = _eb(el, "PartyId", pid.value)
        if pid.type:
            p.set(f"{{{EB_NS}}}type", xml_safe(pid.type))
    if party.role:
        _eb(el, "Role", party.role)


@dataclass(frozen=True, slots=True)
class _Header:
    from_party: Party
    to_party: Party
    cpa_id: str
    conversation_id: str
    service: Service
    action: str
    message_id: str
    timestamp: datetime
    ref_to_message_id: str | None = None
    time_to_live: datetime | None = None
    duplicate_elimination: bool = False
    descriptions: tuple[Description, ...] = ()


def _envelope(h: _Header) -> tuple[etree._Element, etree._Element, etree._Element]:
    root = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap=_NSMAP)
    header = etree.SubElement(root, f"{{{SOAP_NS}}}Header")
    body = etree.SubElement(root, f"{{{SOAP_NS}}}Body")
    mh = _header_block(header, "MessageHeader")
    _party(mh, "From", h.from_party)
    _party(mh, "To", h.to_party)
    _eb(mh, "CPAId", h.cpa_id)
    _eb(mh, "ConversationId", h.conversation_id)
    svc = _eb(mh, "Service", h.service.value)
    if h.service.type:
        svc.set(f"{{{EB_NS}}}type", xml_safe(h.service.type))
    _eb(mh, "Action", h.action)
    md = _eb(mh, "MessageData")
    _eb(md, "MessageId", h.message_id)
    _eb(md, "Timestamp", format_timestamp(h.timestamp))
    if h.ref_to_message_id:
        _eb(md, "RefToMessageId", h.ref_to_message_id)
    if h.time_to_live is not None:
        _eb(md, "TimeToLive", format_timestamp(h.time_to_live))
    if h.duplicate_elimination:
        _eb(mh, "DuplicateElimination")
    for d in h.descriptions:
        de = _eb(mh, "Description", d.text)
        de.set(f"{{{XML_NS}}}lang", d.lang or "no")
    return root, header, body


def _ack_requested(header: etree._Element, *, signed: bool) -> None:
    ack = _header_block(header, "AckRequested")
    ack.set(f"{{{SOAP_NS}}}actor", ACTOR_TO_PARTY_MSH)
    ack.set(f"{{{EB_NS}}}signed", "true" if signed else "false")


def _manifest(body: etree._Element, content_ids: Iterable[str]) -> None:
    manifest = _eb(body, "Manifest")
    manifest.set(f"{{{EB_NS}}}version", "2.0")
    for cid in content_ids:
        ref = _eb(manifest, "Reference")
        ref.set(f"{{{XLINK_NS}}}href", cid_uri(cid))
        ref.set(f"{{{XLINK_NS}}}type", "simple")


def _encode(cte: Cte, data: bytes) -> bytes:
    if cte == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    if cte == "quoted-printable":
        # Not istext: CR and LF are escaped, so decoding gives back exactly these bytes.
        return binascii.b2a_qp(data, istext=False).replace(b"=\n", b"=\r\n")
    if cte == "7bit" and not data.isascii():
        raise ValueError("7bit needs ASCII content; use 8bit, binary, base64 or quoted-printable")
    return data


def _multipart(
    soap: bytes,
    soap_cid: str,
    soap_cte: Cte,
    payloads: Sequence[tuple[str, Payload]],
) -> tuple[bytes, str]:
    parts: list[tuple[bytes, bytes]] = [
        (
            (
                "Content-Type: text/xml; charset=UTF-8\r\n"
                f"Content-Transfer-Encoding: {soap_cte}\r\n"
                f"Content-ID: <{soap_cid}>\r\n"
            ).encode("ascii"),
            _encode(soap_cte, soap),
        )
    ]
    for cid, p in payloads:
        if any(c in p.content_type + cid for c in "\r\n<>"):
            raise ValueError("content type and content id must not hold line breaks or <>")
        head = (
            f"Content-Type: {p.content_type}\r\n"
            f"Content-Transfer-Encoding: {p.cte}\r\n"
            f"Content-ID: <{cid}>\r\n"
        ).encode("ascii")
        parts.append((head, _encode(p.cte, p.data)))
    seed = hashlib.sha256(b"".join(h + b for h, b in parts)).hexdigest()
    n = 0
    while True:
        boundary = f"----=_Part_{seed[:32]}{n or ''}"
        marker = b"--" + boundary.encode("ascii")
        if not any(marker in b for _, b in parts):
            break
        n += 1
    out = bytearray()
    for head, content in parts:
        out += marker + b"\r\n" + head + b"\r\n" + content + b"\r\n"
    out += marker + b"--\r\n"
    ctype = f'multipart/related; type="text/xml"; boundary="{boundary}"; start="<{soap_cid}>"'
    return bytes(out), ctype


def mail_safe(mime: MimeMessage) -> tuple[bytes, str, str | None]:
    """The same message for a mail: every part base64 (binary CMS does not survive SMTP), the
    Content-IDs kept; the signatures cover the decoded parts, so they stay valid. Returns the
    body, its Content-Type and, for a single-part envelope, its Content-Transfer-Encoding."""
    if mime.soap_content_id is None and not mime.attachments:
        return _encode("base64", mime.soap), mime.soap_content_type, "base64"
    soap_cid = mime.soap_content_id or _digest_id("soap", mime.soap)
    parts = [
        (a.content_id, Payload(a.data, a.content_type, a.content_id, "base64"))
        for a in mime.attachments
    ]
    body, content_type = _multipart(mime.soap, soap_cid, "base64", parts)
    return body, content_type, None


def _serialise(
    root: etree._Element,
    attachments: Mapping[str, bytes],
    sign: Signer | None,
) -> bytes:
    if sign is not None:
        root = sign(root, attachments)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _finish(
    root: etree._Element,
    message_id: str,
    payloads: Sequence[Payload],
    *,
    soap_cte: Cte,
    sign: Signer | None,
    multipart: bool = True,
) -> BuiltMessage:
    named = [(p.content_id or _digest_id("payload", p.data), p) for p in payloads]
    soap = _serialise(root, {cid: p.data for cid, p in named}, sign)
    if not multipart and not named:
        return BuiltMessage(soap, "text/xml; charset=UTF-8", soap, message_id, None)
    soap_cid = _digest_id("soap", message_id.encode("utf-8"))
    body, ctype = _multipart(soap, soap_cid, soap_cte, named)
    return BuiltMessage(body, ctype, soap, message_id, soap_cid)


def _payload_cids(payloads: Sequence[Payload]) -> list[str]:
    return [p.content_id or _digest_id("payload", p.data) for p in payloads]


def build_message(
    *,
    from_party: Party,
    to_party: Party,
    cpa_id: str,
    conversation_id: str,
    service: Service,
    action: str,
    message_id: str,
    timestamp: datetime,
    payload: Payload,
    time_to_live: datetime | None = None,
    duplicate_elimination: bool = True,
    ack_requested: bool = True,
    ack_signed: bool = True,
    ref_to_message_id: str | None = None,
    descriptions: Sequence[Description] = (),
    soap_cte: Cte = "binary",
    sign: Signer | None = None,
) -> BuiltMessage:
    """An outgoing business message as an EPJ's MSH sends it (used by `send` and tests)."""
    root, header, body = _envelope(
        _Header(
            from_party,
            to_party,
            cpa_id,
            conversation_id,
            service,
            action,
            message_id,
            timestamp,
            ref_to_message_id,
            time_to_live,
            duplicate_elimination,
            tuple(descriptions),
        )
    )
    if ack_requested:
        _ack_requested(header, signed=ack_signed)
    _manifest(body, _payload_cids([payload]))
    return _finish(root, message_id, [payload], soap_cte=soap_cte, sign=sign)


def build_reply(
    received: EbmsHeader,
    *,
    message_id: str,
    timestamp: datetime,
    apprec: Payload,
    our_party: Party | None = None,
    acknowledge: bool | None = None,
    ack_requested: bool = False,
    descriptions: Sequence[Description] = (),
    soap_cte: Cte = "binary",
    sign: Signer | None = None,
) -> BuiltMessage:
    """The reply to a received business message: MessageHeader (Action APPREC, same
    conversation and Service, RefToMessageId = the received MessageId), an eb:Acknowledgment
    when the sender asked for one (`acknowledge` overrides), and the AppRec as payload.

    `our_party` defaults to the received To party (the address the message came to).
    """
    if acknowledge is None:
        acknowledge = received.ack_requested is not None
    splice: bytes | None = None
    root, header, body = _envelope(
        _Header(
            from_party=our_party or received.to_party,
            to_party=received.from_party,
            cpa_id=received.cpa_id,
            conversation_id=received.conversation_id,
            service=received.service,
            action=ACTION_APPREC,
            message_id=message_id,
            timestamp=timestamp,
            ref_to_message_id=received.message_id,
            duplicate_elimination=False,
            descriptions=tuple(descriptions),
        )
    )
    if acknowledge:
        ack = _header_block(header, "Acknowledgment")
        ack.set(f"{{{SOAP_NS}}}actor", ACTOR_TO_PARTY_MSH)
        _eb(ack, "Timestamp", format_timestamp(timestamp))
        _eb(ack, "RefToMessageId", received.message_id)
        if received.signature_references:
            # Spliced in as text: moving parsed elements into this tree would let lxml drop
            # their "redundant" namespace declarations (e.g. SOAP-ENV used inside ds:XPath),
            # and the copies must stay exactly as the sender signed them.
            ack.append(etree.Comment(_REFS_MARK))
            splice = b"".join(received.signature_references)
    if ack_requested:
        _ack_requested(header, signed=True)
    _manifest(body, _payload_cids([apprec]))
    if splice is not None:
        marker = etree.tostring(etree.Comment(_REFS_MARK))
        root = parse_xml(etree.tostring(root).replace(marker, splice, 1))
    return _finish(root, message_id, [apprec], soap_cte=soap_cte, sign=sign)


def build_acknowledgment(
    acknowledged: EbmsHeader,
    *,
    message_id: str,
    timestamp: datetime,
    sign: Signer | None = None,
) -> BuiltMessage:
    """The Acknowledgment signal a receiving MSH sends as a message of its own for
    `acknowledged`: what a sender returns for KPR's asynchronous reply (`kpr-mottak send
    --async-endpoint`, the tests)."""
    root, header, _body = _envelope(
        _Header(
            from_party=acknowledged.to_party,
            to_party=acknowledged.from_party,
            cpa_id=acknowledged.cpa_id,
            conversation_id=acknowledged.conversation_id,
            service=Service(SIGNAL_SERVICE, None),
            action=ACTION_ACKNOWLEDGMENT,
            message_id=message_id,
            timestamp=timestamp,
            ref_to_message_id=acknowledged.message_id,
        )
    )
    ack = _header_block(header, "Acknowledgment")
    ack.set(f"{{{SOAP_NS}}}actor", ACTOR_TO_PARTY_MSH)
    _eb(ack, "Timestamp", format_timestamp(timestamp))
    _eb(ack, "RefToMessageId", acknowledged.message_id)
    return _finish(root, message_id, [], soap_cte="binary", sign=sign)


def _error_description(f: Finding) -> str:
    return f"[{f.rule.id}] {f.rule.text_no} {f.detail}".strip()


def build_message_error(
    findings: Sequence[Finding],
    *,
    from_party: Party,
    to_party: Party,
    cpa_id: str,
    conversation_id: str,
    ref_to_message_id: str | None,
    message_id: str,
    timestamp: datetime,
    multipart: bool = True,
    soap_cte: Cte = "binary",
    sign: Signer | None = None,
) -> BuiltMessage:
    """A standalone MessageError signal listing one eb:Error per finding."""
    if not findings:
        raise ValueError("a MessageError needs at least one finding")
    root, header, _body = _envelope(
        _Header(
            from_party,
            to_party,
            cpa_id,
            conversation_id,
            Service(SIGNAL_SERVICE, None),
            ACTION_MESSAGE_ERROR,
            message_id,
            timestamp,
            ref_to_message_id,
        )
    )
    highest = "Error" if any(f.severity is Severity.ERROR for f in findings) else "Warning"
    error_list = _header_block(header, "ErrorList")
    error_list.set(f"{{{EB_NS}}}highestSeverity", highest)
    for f in findings:
        err = _eb(error_list, "Error")
        err.set(f"{{{EB_NS}}}errorCode", f.rule.ebms_error_code or "Unknown")
        err.set(f"{{{EB_NS}}}severity", "Error" if f.severity is Severity.ERROR else "Warning")
        if f.location.strip():
            err.set(f"{{{EB_NS}}}location", xml_safe(f.location))
        desc = _eb(err, "Description", _error_description(f))
        desc.set(f"{{{XML_NS}}}lang", "no")
    return _finish(root, message_id, [], soap_cte=soap_cte, sign=sign, multipart=multipart)


def build_message_error_for(
    context: ReplyContext,
    findings: Sequence[Finding],
    *,
    our_party: Party,
    message_id: str,
    timestamp: datetime,
    multipart: bool = True,
    sign: Signer | None = None,
) -> BuiltMessage:
    """A MessageError addressed from whatever could be read of the received header (it may be
    incomplete or absent: unknown values become 'unknown', as real MSHs write)."""
    to_ids = context.from_party_ids or (PartyId("unknown", None),)
    return build_message_error(
        findings,
        from_party=our_party,
        to_party=Party(to_ids, None),
        cpa_id=context.cpa_id or "unknown",
        conversation_id=context.conversation_id or message_id,
        ref_to_message_id=context.message_id,
        message_id=message_id,
        timestamp=timestamp,
        multipart=multipart,
        sign=sign,
    )
