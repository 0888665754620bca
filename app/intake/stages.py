"""The CPU-bound steps of the intake, as plain synchronous functions over bytes and frozen
dataclasses. The service runs each in a worker thread and does all I/O around them.

Each step has its module: transport (`read_transport`), this one (`open_message`: envelope
signature, payload, decryption, document signature), business (`read_business`,
`check_content`), reply (`wrap_apprec`: the core's AppRec in the signed ebXML reply);
reading holds the bounded-memory helpers they share. The service calls every step through
this module (`stages.read_business`), so this module names them all, and a test can replace
any one here."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import IO

from cryptography import x509

from app.core.findings import Consequence, Finding
from app.core.xmlparse import parse_xml_file
from app.ebxml import rules as ebxml_rules
from app.ebxml.checks import resolve_cid
from app.ebxml.envelope import EbmsHeader
from app.ebxml.mime import Attachment, MimeMessage
from app.intake import rules as intake_rules
from app.intake.business import (
    Business,
    BusinessHead,
    HeadExpectations,
    check_business,
    check_content,
    read_business,
)
from app.intake.reading import (
    TRIM_AFTER_BYTES,
    count_elements,
    count_elements_in,
    read_all,
    release_freed_memory,
    sha256_of,
)
from app.intake.reply import BuiltReceipt, wrap_apprec
from app.intake.transport import _PKCS7, Transport, read_transport
from app.security import cms, xmldsig
from app.security import rules as sec_rules
from app.security.certificates import PartyTrust, SignatureLevel, TrustStore, check_signer
from app.security.dsig_stream import verify_document_stream
from app.security.keys import KeyPair
from app.security.xmldsig import envelope_signer

__all__ = [
    "DSIG_STREAM_MIN_BYTES",
    "BuiltReceipt",
    "Business",
    "BusinessHead",
    "HeadExpectations",
    "LogEvent",
    "Opened",
    "PayloadPolicy",
    "Transport",
    "check_business",
    "check_content",
    "count_elements",
    "count_elements_in",
    "envelope_signer",
    "open_message",
    "read_all",
    "read_business",
    "read_transport",
    "release_freed_memory",
    "sha256_of",
    "wrap_apprec",
]

# An event for the message's log: a name and its few fields.
LogEvent = tuple[str, dict[str, str | bool | None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Opened:
    """The payload opened: `content` is the MsgHead in a spool (`cms.new_spool`, at position 0,
    `size` bytes) when it could be read; whoever holds the `Opened` closes it (`close`)."""

    content: IO[bytes] | None = None
    transport_findings: tuple[Finding, ...] = ()  # -> MessageError
    business_findings: tuple[Finding, ...] = ()  # -> AppRec
    transient: bool = False  # a temporary failure (revocation status unavailable): retry
    envelope_signer: x509.Certificate | None = None
    document_signer: x509.Certificate | None = None
    encrypted: bool = False
    events: tuple[LogEvent, ...] = field(default=())
    # The envelope signature verified and its signer accepted for the party: from here on the
    # sender is known, and only from here may answers be specific or signed by KPR.
    authenticated: bool = False
    size: int = 0  # the MsgHead's length in bytes

    def close(self) -> None:
        if self.content is not None:
            self.content.close()


def _payload(
    mime: MimeMessage, header: EbmsHeader, signed_cids: Collection[str] | None
) -> Attachment | None:
    """The business payload: the part the Manifest's first cid: names, as the very Attachment
    whose bytes the signature verified (`signed_cids`, normalised; None when unsigned)."""
    for ref in header.manifest:
        cid = resolve_cid(ref.href)
        att = mime.attachment(cid) if cid else None
        if att is not None and (signed_cids is None or att.content_id in signed_cids):
            return att
    return None


def _is_cms(att: Attachment) -> bool:
    # Trust the bytes as much as the label: DER always starts with a SEQUENCE tag.
    return att.media_type in _PKCS7 or att.data[:1] == b"\x30"


@dataclass(frozen=True, slots=True, kw_only=True)
class _EnvelopeSignature:
    findings: tuple[Finding, ...] = ()  # -> MessageError
    transient: bool = False
    signer: x509.Certificate | None = None
    signed_cids: tuple[str, ...] | None = None  # normalised; None when unsigned
    events: tuple[LogEvent, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Unpacked:
    """The payload part decrypted or inflated into a spool: `content` is None when it could
    not be."""

    content: IO[bytes] | None = None
    size: int = 0
    transport_findings: tuple[Finding, ...] = ()
    business_findings: tuple[Finding, ...] = ()
    encrypted: bool = False
    cms_signer: x509.Certificate | None = None  # the signer of a CMS SignedData inside
    events: tuple[LogEvent, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class _DocumentSignature:
    signer: x509.Certificate | None = None
    findings: tuple[Finding, ...] = ()  # -> AppRec
    undecryptable: bool = False  # decrypted, but not XML


@dataclass(frozen=True, slots=True, kw_only=True)
class _SignerCheck:
    transport_findings: tuple[Finding, ...]
    business_findings: tuple[Finding, ...]
    transient: bool
    event: LogEvent


def open_message(transport: Transport, policy: PayloadPolicy, *, payload: bool = True) -> Opened:
    """Envelope signature and signer, decryption, business signature and signer. A signal
    (`payload=False`) stops after the envelope signature."""
    mime, header = transport.mime, transport.header
    assert mime is not None
    assert header is not None
    envelope = _check_envelope_signature(
        mime,
        header,
        party=policy.party,
        trust=policy.trust,
        now=policy.now,
        requires_signing=policy.requires_signing,
    )
    if envelope.findings:
        return Opened(
            transport_findings=envelope.findings,
            transient=envelope.transient,
            envelope_signer=envelope.signer,
            events=envelope.events,
        )
    if not payload:
        return Opened(envelope_signer=envelope.signer, events=envelope.events, authenticated=True)
    opened = _open_payload(mime, header, envelope.signed_cids, policy)
    return replace(
        opened,
        envelope_signer=envelope.signer,
        events=(*envelope.events, *opened.events),
        authenticated=True,
    )


def _check_envelope_signature(
    mime: MimeMessage,
    header: EbmsHeader,
    *,
    party: PartyTrust,
    trust: TrustStore,
    now: datetime,
    requires_signing: bool,
) -> _EnvelopeSignature:
    """The ebXML envelope's ds:Signature and its signer's certificate."""
    if not header.has_signature:
        return _EnvelopeSignature(findings=(_envelope_unsigned(),) if requires_signing else ())
    sig = xmldsig.verify_envelope(mime.soap, mime.attachment_map)
    findings: tuple[Finding, ...] = tuple(sig.findings)
    transient = False
    if sig.valid and sig.signer is not None:
        check = check_signer(
            sig.signer, party=party, trust=trust, now=now, level=SignatureLevel.TRANSPORT
        )
        findings += tuple(check.findings)
        transient = check.transient
    event: LogEvent = ("signature_checked", {"valid": not findings, "signer": _subject(sig.signer)})
    return _EnvelopeSignature(
        findings=findings,
        transient=transient,
        signer=sig.signer,
        signed_cids=sig.signed_cids,
        events=(event,),
    )


def _envelope_unsigned() -> Finding:
    return Finding(
        intake_rules.ENVELOPE_UNSIGNED_REFUSED,
        "SOAP:Header",
        "Signer ebXML-meldingen (ds:Signature i SOAP:Header) med "
        "virksomhetssertifikatet, slik avtalen (CPA) krever.",
    )


def _undecryptable() -> Finding:
    """Every way a payload can fail once the key has decrypted it (bad padding, garbage that
    is not gzip, not XML) gets this one answer, as a decryption failure does: a different
    answer would tell a sender which ciphertexts decrypt (a padding oracle)."""
    return Finding(
        sec_rules.CMS_DECRYPT,
        "SOAP:Body/eb:Manifest",
        "Vedlegget kunne ikke dekrypteres og leses som en fagmelding. Kontroller at det er "
        "kryptert til KPRs gjeldende krypteringssertifikat og ikke er skadet.",
    )


_UNDECRYPTABLE_RULES = frozenset({sec_rules.CMS_DECRYPT.id, sec_rules.GZIP_CORRUPT.id})


@dataclass(frozen=True, slots=True, kw_only=True)
class PayloadPolicy:
    """What opening a payload is judged by: the party, the trust, our keys and the caps."""

    party: PartyTrust
    trust: TrustStore
    keys: Sequence[KeyPair]
    now: datetime
    requires_signing: bool
    requires_encryption: bool
    max_inflated: int
    max_elements: int


def _open_payload(
    mime: MimeMessage,
    header: EbmsHeader,
    signed_cids: Collection[str] | None,
    policy: PayloadPolicy,
) -> Opened:
    """After the envelope signature: decryption, business signature and signer."""
    part = _payload(mime, header, signed_cids)
    if part is None:
        # A business message always has a payload (signals never get here): never an OK.
        return Opened(transport_findings=(_payload_missing(),))
    unpacked = _unpack(part, policy)
    opened: Opened | None = None
    try:
        opened = _judge_payload(unpacked, policy)
        return opened
    finally:
        if unpacked.content is not None and (opened is None or opened.content is None):
            unpacked.content.close()  # not handed on: no spool outlives the step


def _judge_payload(unpacked: _Unpacked, policy: PayloadPolicy) -> Opened:
    """The payload unpacked: its size in elements, the business signature and signer."""
    content, encrypted, events = unpacked.content, unpacked.encrypted, unpacked.events
    if content is None:
        return Opened(
            transport_findings=unpacked.transport_findings,
            business_findings=unpacked.business_findings,
            encrypted=encrypted,
            events=events,
        )
    content.seek(0)
    elements = count_elements_in(content)
    content.seek(0)
    if elements > policy.max_elements:
        # Counted on the bytes before any tree is built: a small gzip can inflate to a
        # document whose tree takes gigabytes.
        too_many = (*unpacked.business_findings, _too_many_elements(policy.max_elements))
        return Opened(business_findings=too_many, encrypted=encrypted, events=events)
    document = _document_signature(
        content,
        size=unpacked.size,
        cms_signer=unpacked.cms_signer,
        encrypted=encrypted,
        requires_signing=policy.requires_signing,
    )
    if document.undecryptable:
        tf = (*unpacked.transport_findings, _undecryptable())
        return Opened(transport_findings=tf, encrypted=True, events=events)
    tf = unpacked.transport_findings
    bf = (*unpacked.business_findings, *document.findings)
    transient = False
    if document.signer is not None and not bf:
        checked = _check_document_signer(document.signer, policy)
        tf, bf = (*tf, *checked.transport_findings), checked.business_findings
        transient, events = checked.transient, (*events, checked.event)
    return Opened(
        content=None if tf else content,
        transport_findings=tf,
        business_findings=bf,
        transient=transient,
        document_signer=document.signer,
        encrypted=encrypted,
        events=events,
        size=unpacked.size,
    )


def _payload_missing() -> Finding:
    return Finding(
        ebxml_rules.PAYLOAD_MISSING,
        "SOAP:Body/eb:Manifest",
        "Meldingen har ingen signert nyttelast referert fra eb:Manifest. Legg den "
        "krypterte meldingen ved som MIME-del og referer den fra eb:Manifest.",
    )


def _plaintext_refused() -> Finding:
    return Finding(
        intake_rules.PLAINTEXT_REFUSED,
        "SOAP:Body/eb:Manifest",
        "Krypter innholdet som CMS EnvelopedData (application/pkcs7-mime)"
        " til KPRs krypteringssertifikat.",
    )


def _too_many_elements(max_elements: int) -> Finding:
    return Finding(
        sec_rules.PAYLOAD_TOO_MANY_ELEMENTS,
        "MsgHead",
        f"Fagmeldingen har flere enn {max_elements} XML-elementer. Del opp meldingen.",
    )


def _document_unsigned() -> Finding:
    return Finding(
        intake_rules.DOCUMENT_UNSIGNED,
        "MsgHead",
        "Signer MsgHead med en omsluttet ds:Signature, eller pakk den i "
        "CMS SignedData før kryptering.",
    )


def _is_message_error(f: Finding) -> bool:
    return f.rule.consequence is Consequence.MESSAGE_ERROR


def _unpack(part: Attachment, policy: PayloadPolicy) -> _Unpacked:
    """The payload's bytes: decrypted when it is CMS, else inflated when the party may send
    plaintext."""
    if _is_cms(part):
        return _decrypt(part.data, keys=policy.keys, max_inflated=policy.max_inflated)
    if policy.requires_encryption:
        return _Unpacked(transport_findings=(_plaintext_refused(),))
    return _inflate(part.data, policy.max_inflated)


def _inflate(data: bytes, max_inflated: int) -> _Unpacked:
    """Plaintext: gunzipped into a spool when it starts as gzip (`cms.inflate`'s findings),
    else copied into one as it is."""
    spool = cms.new_spool()
    try:
        if not data.startswith(cms.GZIP_MAGIC):
            spool.write(data)
            spool.seek(0)
            return _Unpacked(content=spool, size=len(data))
        gunzip = cms.Gunzip(spool.write, max_inflated)
        gunzip.feed(data)
        findings = gunzip.finish()
    except BaseException:
        spool.close()
        raise
    if findings:
        spool.close()
        return _Unpacked(business_findings=findings)
    spool.seek(0)
    return _Unpacked(content=spool, size=gunzip.size)


def _decrypt(data: bytes, *, keys: Sequence[KeyPair], max_inflated: int) -> _Unpacked:
    opened = cms.open_payload_spooled(data, keys, max_inflated=max_inflated)
    event: LogEvent = (
        "decrypted",
        {
            "ok": opened.content is not None,
            "cipher": opened.cipher.value if opened.cipher else None,
            "compressed": opened.compressed,
            "cms_signed": opened.cms_signed,
            "failed": ",".join(sorted({f.rule.id for f in opened.findings})) or None,
        },
    )
    transport = tuple(
        _undecryptable() if f.rule.id in _UNDECRYPTABLE_RULES else f
        for f in opened.findings
        if f.rule.id in _UNDECRYPTABLE_RULES or _is_message_error(f)
    )
    business = tuple(
        f
        for f in opened.findings
        if f.rule.id not in _UNDECRYPTABLE_RULES and not _is_message_error(f)
    )
    return _Unpacked(
        content=opened.content,
        size=opened.size,
        transport_findings=transport,
        business_findings=business,
        encrypted=True,
        cms_signer=opened.signer if opened.cms_signed else None,
        events=(event,),
    )


def _document_signature(
    content: IO[bytes],
    *,
    size: int,
    cms_signer: x509.Certificate | None,
    encrypted: bool,
    requires_signing: bool,
) -> _DocumentSignature:
    """Who signed the business document: the CMS SignedData's signer, else the MsgHead's
    enveloped ds:Signature."""
    if cms_signer is not None:
        return _DocumentSignature(signer=cms_signer)
    try:
        return _enveloped_signature(
            content, size=size, encrypted=encrypted, requires_signing=requires_signing
        )
    finally:
        content.seek(0)


# A business document of at least this many bytes has its enveloped ds:Signature verified
# as a stream (memory: one chunk's tree, not the document's); smaller ones by xmlsec on the
# tree. The stream path answers None for what it does not handle: then the tree decides.
DSIG_STREAM_MIN_BYTES = 1024 * 1024


def _enveloped_signature(
    content: IO[bytes], *, size: int, encrypted: bool, requires_signing: bool
) -> _DocumentSignature:
    """MsgHead's enveloped ds:Signature: streamed from 1 MiB on, else (or where the stream
    steps aside) by xmlsec on the whole tree."""
    doc: xmldsig.DocumentSignature | None = None
    if size >= DSIG_STREAM_MIN_BYTES:
        try:
            content.seek(0)
            doc = verify_document_stream(content)
        except Exception:  # the stream only saves memory: the tree decides
            doc = None
    try:
        if doc is None:
            # xmlsec verifies an enveloped ds:Signature over the whole document: the tree
            # path, parsed from the spool (not from a copy of its bytes)
            content.seek(0)
            try:
                doc = xmldsig.verify_document(parse_xml_file(content, huge=True))
            finally:
                if size >= TRIM_AFTER_BYTES:
                    release_freed_memory()  # the tree's: else the heap keeps it for good
    except Exception:
        if encrypted:  # decrypted, but not XML: answered as a decryption failure
            return _DocumentSignature(undecryptable=True)
        # plaintext that is not XML: the MsgHead reader reports it precisely
        doc = None
    if doc is not None and doc.present:
        return _DocumentSignature(signer=doc.signer, findings=tuple(doc.findings))
    if requires_signing:
        return _DocumentSignature(findings=(_document_unsigned(),))
    return _DocumentSignature()


def _check_document_signer(signer: x509.Certificate, policy: PayloadPolicy) -> _SignerCheck:
    check = check_signer(
        signer,
        party=policy.party,
        trust=policy.trust,
        now=policy.now,
        level=SignatureLevel.BUSINESS,
        location="MsgHead/ds:Signature",
    )
    # Revocation status unavailable is our outage (MessageError DeliveryFailure, the sender
    # retries), never an AppRec rejection.
    return _SignerCheck(
        transport_findings=tuple(f for f in check.findings if _is_message_error(f)),
        business_findings=tuple(f for f in check.findings if not _is_message_error(f)),
        transient=check.transient,
        event=(
            "document_signature_checked",
            {"valid": check.accepted, "signer": _subject(signer)},
        ),
    )


def _subject(cert: x509.Certificate | None) -> str | None:
    return cert.subject.rfc4514_string() if cert is not None else None


def open_payload_bytes(data: bytes, policy: PayloadPolicy) -> Opened:
    """A payload a transport already took out of its framing (the transport seam): CMS
    EnvelopedData, decrypted, then its business signature (CMS SignedData inside, or the
    MsgHead's enveloped ds:Signature) and signer, as `open_message` does for the ebXML part.
    The caller closes the `Opened`; a transport without an envelope signature requires both
    (`policy.requires_signing`, `requires_encryption`)."""
    unpacked = _decrypt(data, keys=policy.keys, max_inflated=policy.max_inflated)
    opened: Opened | None = None
    try:
        opened = _judge_payload(unpacked, policy)
        # no envelope signature here: the business signature is the authentication
        return replace(
            opened,
            authenticated=opened.document_signer is not None
            and not opened.transport_findings
            and not opened.business_findings,
        )
    finally:
        if unpacked.content is not None and (opened is None or opened.content is None):
            unpacked.content.close()
