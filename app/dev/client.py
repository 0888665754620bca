"""The test client: wraps a MsgHead in an ebXML message the way a municipality's EPJ and its
MSH would (sign the MsgHead, gzip, encrypt to KPR, sign the envelope), and reads the reply.

`kpr-mottak send` and the tests build their messages with this, so what the tests post is what
a real sender posts.
"""

from __future__ import annotations

import gzip as gzip_lib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from lxml import etree

from app.core.findings import Finding
from app.core.xmlparse import parse_xml
from app.ebxml import build as ebuild
from app.ebxml.envelope import EbmsHeader, Service, parse_envelope
from app.ebxml.mime import parse_body
from app.security import cms, xmldsig
from app.security.keys import KeyPair
from app.security.xmldsig import envelope_signer

PKCS7 = "application/pkcs7-mime; smime-type=enveloped-data"


@dataclass(frozen=True, slots=True)
class SendOptions:
    from_her: str
    to_her: str = "131725"
    cpa_id: str = "kpr-pilot"
    service: str = "KPR_IPL"
    action: str = "KPR_IPL"
    message_id: str | None = None
    conversation_id: str | None = None
    timestamp: datetime | None = None
    time_to_live: datetime | None = None
    ref_to_message_id: str | None = None
    ack_requested: bool = True
    sign_document: bool = True
    gzip: bool = False
    soap_cte: ebuild.Cte = "binary"


def prepare_payload(
    msghead: bytes,
    *,
    signing: KeyPair | None,
    encrypt_to: x509.Certificate | None,
    sign_document: bool = True,
    gzip: bool = False,
) -> ebuild.Payload:
    """MsgHead -> (enveloped ds:Signature) -> (gzip) -> (CMS EnvelopedData)."""
    data = msghead
    if sign_document and signing is not None:
        signed = xmldsig.sign_document(parse_xml(msghead, huge=True), signing)
        data = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    if gzip:
        data = gzip_lib.compress(data, mtime=0)
    if encrypt_to is not None:
        return ebuild.Payload(cms.encrypt_enveloped(data, encrypt_to), PKCS7)
    return ebuild.Payload(data, "text/xml; charset=UTF-8")


def build_ebxml(
    payload: ebuild.Payload,
    options: SendOptions,
    signing: KeyPair | None,
    *,
    sign: ebuild.Signer | None = None,
) -> ebuild.BuiltMessage:
    """The ebXML message around a prepared payload, signed by the sender's MSH (with our
    XML-DSig and `signing`, or with `sign` when given, e.g. an external tool)."""
    now = options.timestamp or datetime.now(UTC)
    message_id = options.message_id or f"{uuid.uuid4()}@epj.example"
    return ebuild.build_message(
        from_party=ebuild.her_party(options.from_her, "Kommune"),
        to_party=ebuild.her_party(options.to_her, "KPR"),
        cpa_id=options.cpa_id,
        conversation_id=options.conversation_id or str(uuid.uuid4()),
        service=Service(options.service, "string"),
        action=options.action,
        message_id=message_id,
        timestamp=now,
        payload=payload,
        time_to_live=options.time_to_live,
        ack_requested=options.ack_requested,
        ref_to_message_id=options.ref_to_message_id,
        soap_cte=options.soap_cte,
        sign=sign if sign is not None else envelope_signer(signing),
    )


def build_epj_message(
    msghead: bytes,
    options: SendOptions,
    *,
    signing: KeyPair | None,
    encrypt_to: x509.Certificate | None,
) -> ebuild.BuiltMessage:
    payload = prepare_payload(
        msghead,
        signing=signing,
        encrypt_to=encrypt_to,
        sign_document=options.sign_document,
        gzip=options.gzip,
    )
    return build_ebxml(payload, options, signing)


@dataclass(frozen=True, slots=True)
class ReadReply:
    header: EbmsHeader | None
    apprec: bytes | None  # decrypted when we hold the key
    signed: bool
    signature_findings: tuple[Finding, ...]
    findings: tuple[Finding, ...]  # problems reading the reply itself


def read_reply(
    body: bytes, content_type: str, *, decryption: tuple[KeyPair, ...] = ()
) -> ReadReply:
    """Parse a reply from kpr-mottak: its ebXML header (Acknowledgment, MessageError) and the
    AppRec payload, decrypted with the sender's key when given."""
    mime = parse_body(body, content_type, max_parts=8)
    if mime.message is None:
        return ReadReply(None, None, False, (), mime.findings)
    env = parse_envelope(mime.message.soap)
    header = env.header
    sig_findings: tuple[Finding, ...] = ()
    signed = header is not None and header.has_signature
    if signed:
        sig_findings = xmldsig.verify_envelope(
            mime.message.soap, mime.message.attachment_map
        ).findings
    apprec: bytes | None = None
    if mime.message.attachments:
        data = mime.message.attachments[0].data
        if data[:1] == b"\x30" and decryption:
            opened = cms.open_payload(data, decryption)
            apprec = opened.content
        elif data[:1] != b"\x30":
            apprec = data
    return ReadReply(header, apprec, signed, sig_findings, (*mime.findings, *env.findings))
