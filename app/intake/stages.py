"""The CPU-bound steps of the intake, as plain synchronous functions over bytes and frozen
dataclasses. The service runs each in a worker thread and does all I/O around them."""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import IO, Literal

from cryptography import x509
from lxml import etree

from app.apprec.build import build_receipt
from app.apprec.mapping import receipt_outcome
from app.apprec.model import AppRecStatus, AppRecVersion
from app.apprec.model import Party as AppRecParty
from app.content import builtin
from app.content.model import ContentContext, ContentResult, HistoryKeys
from app.content.registry import ContentFormat, KeyCollector
from app.core.findings import Consequence, Finding
from app.core.xmlparse import parse_xml_file
from app.ebxml import build as ebuild
from app.ebxml import rules as ebxml_rules
from app.ebxml.checks import Receiver, check_header, resolve_cid
from app.ebxml.envelope import EbmsHeader, ReplyContext, parse_envelope
from app.ebxml.mime import Attachment, MimeMessage, parse_body
from app.intake import rules as intake_rules
from app.msghead.checks import check_msghead
from app.msghead.model import MsgHead, MsgHeadReading
from app.msghead.parse import read_msghead, read_msghead_stream
from app.security import cms, xmldsig
from app.security import rules as sec_rules
from app.security.certificates import PartyTrust, SignatureLevel, TrustStore, check_signer
from app.security.dsig_stream import verify_document_stream
from app.security.keys import KeyPair

_PKCS7 = ("application/pkcs7-mime", "application/x-pkcs7-mime", "application/octet-stream")


@dataclass(frozen=True, slots=True)
class Transport:
    mime: MimeMessage | None
    header: EbmsHeader | None
    reply_context: ReplyContext
    receiver: Receiver | None
    findings: tuple[Finding, ...]
    content_sha256: str  # over the SOAP part and the payloads, independent of MIME framing


def read_transport(
    body: bytes,
    content_type: str | None,
    *,
    receivers: Mapping[str, str],
    now: datetime,
    max_parts: int,
    max_header_bytes: int,
) -> Transport:
    """MIME, SOAP, ebMS header and the pure header checks."""
    mime_result = parse_body(
        body, content_type, max_parts=max_parts, max_part_header_bytes=max_header_bytes
    )
    mime = mime_result.message
    if mime is None:
        return Transport(
            None, None, ReplyContext(), None, mime_result.findings, hashlib.sha256(body).hexdigest()
        )
    digest = hashlib.sha256(mime.soap)
    for att in mime.attachments:
        digest.update(att.content_id.encode())
        digest.update(hashlib.sha256(att.data).digest())
    env = parse_envelope(mime.soap)
    if env.header is None:
        return Transport(
            mime,
            None,
            env.reply_context,
            None,
            (*mime_result.findings, *env.findings),
            digest.hexdigest(),
        )
    checked = check_header(env.header, mime, receivers=receivers, now=now)
    return Transport(
        mime,
        env.header,
        env.reply_context,
        checked.receiver,
        (*mime_result.findings, *env.findings, *checked.findings),
        digest.hexdigest(),
    )


# An event for the message's log: a name and its few fields.
LogEvent = tuple[str, dict[str, str | bool | None]]


@dataclass(frozen=True, slots=True)
class Opened:
    """The payload opened: `content` is the MsgHead in a spool (`cms.new_spool`, at position 0,
    `size` bytes) when it could be read; whoever holds the `Opened` closes it (`close`)."""

    content: IO[bytes] | None
    transport_findings: tuple[Finding, ...]  # -> MessageError
    business_findings: tuple[Finding, ...]  # -> AppRec
    transient: bool  # a temporary failure (revocation status unavailable): sender retries
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


def open_message(
    transport: Transport,
    *,
    party: PartyTrust,
    trust: TrustStore,
    keys: Sequence[KeyPair],
    now: datetime,
    requires_signing: bool,
    requires_encryption: bool,
    max_inflated: int,
    max_elements: int,
    payload: bool = True,
) -> Opened:
    """Envelope signature and signer, decryption, business signature and signer. A signal
    (`payload=False`) stops after the envelope signature."""
    mime, header = transport.mime, transport.header
    assert mime is not None
    assert header is not None
    envelope = _check_envelope_signature(
        mime, header, party=party, trust=trust, now=now, requires_signing=requires_signing
    )
    if envelope.findings:
        return Opened(
            None, envelope.findings, (), envelope.transient, envelope.signer, events=envelope.events
        )
    if not payload:
        return Opened(
            None, (), (), False, envelope.signer, events=envelope.events, authenticated=True
        )
    policy = _PayloadPolicy(
        party=party,
        trust=trust,
        keys=keys,
        now=now,
        requires_signing=requires_signing,
        requires_encryption=requires_encryption,
        max_inflated=max_inflated,
        max_elements=max_elements,
    )
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


def count_elements(data: bytes) -> int:
    """An upper bound on the elements of an XML document, without building a tree: every
    element has one start tag, and `<` cannot stand raw in text or attribute values."""
    return data.count(b"<") - data.count(b"</")


_CHUNK = 1024 * 1024
# After a tree of a document at least this large (the enveloped ds:Signature's tree path) the
# freed heap is handed back to the system.
TRIM_AFTER_BYTES = cms.SPOOL_MAX_SIZE


def release_freed_memory() -> None:
    """glibc keeps freed heap memory (libxml2's tree of a large document: hundreds of MB) for
    the process, where Python's own allocations do not reuse it; `malloc_trim` returns it.
    Nothing elsewhere (another C library, no libc found)."""
    global _malloc_trim
    if _malloc_trim is None:
        _malloc_trim = _find_malloc_trim()
    if _malloc_trim is not False:
        _malloc_trim(0)


def _find_malloc_trim() -> Callable[[int], int] | Literal[False]:
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return False
    return trim


_malloc_trim: Callable[[int], int] | Literal[False] | None = None


def count_elements_in(source: IO[bytes]) -> int:
    """`count_elements` over a binary file, read in chunks from its current position (left
    at the end)."""
    count = 0
    last = b""
    while chunk := source.read(_CHUNK):
        count += chunk.count(b"<") - chunk.count(b"</")
        if last == b"<" and chunk[:1] == b"/":  # a `</` split between two chunks
            count -= 1
        last = chunk[-1:]
    return count


def read_all(source: IO[bytes]) -> bytes:
    """The whole of a spool, from the start; left at position 0."""
    source.seek(0)
    data = source.read()
    source.seek(0)
    return data


def sha256_of(source: IO[bytes]) -> str:
    """SHA-256 of a spool from the start, read in chunks; left at position 0."""
    source.seek(0)
    digest = hashlib.sha256()
    while chunk := source.read(_CHUNK):
        digest.update(chunk)
    source.seek(0)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class _PayloadPolicy:
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
    policy: _PayloadPolicy,
) -> Opened:
    """After the envelope signature: decryption, business signature and signer."""
    part = _payload(mime, header, signed_cids)
    if part is None:
        # A business message always has a payload (signals never get here): never an OK.
        return Opened(None, (_payload_missing(),), (), False)
    unpacked = _unpack(part, policy)
    opened: Opened | None = None
    try:
        opened = _judge_payload(unpacked, policy)
        return opened
    finally:
        if unpacked.content is not None and (opened is None or opened.content is None):
            unpacked.content.close()  # not handed on: no spool outlives the step


def _judge_payload(unpacked: _Unpacked, policy: _PayloadPolicy) -> Opened:
    """The payload unpacked: its size in elements, the business signature and signer."""
    content, encrypted, events = unpacked.content, unpacked.encrypted, unpacked.events
    if content is None:
        return Opened(
            None,
            unpacked.transport_findings,
            unpacked.business_findings,
            False,
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
        return Opened(None, (), too_many, False, encrypted=encrypted, events=events)
    document = _document_signature(
        content,
        size=unpacked.size,
        cms_signer=unpacked.cms_signer,
        encrypted=encrypted,
        requires_signing=policy.requires_signing,
    )
    if document.undecryptable:
        tf = (*unpacked.transport_findings, _undecryptable())
        return Opened(None, tf, (), False, encrypted=True, events=events)
    tf = unpacked.transport_findings
    bf = (*unpacked.business_findings, *document.findings)
    transient = False
    if document.signer is not None and not bf:
        checked = _check_document_signer(document.signer, policy)
        tf, bf = (*tf, *checked.transport_findings), checked.business_findings
        transient, events = checked.transient, (*events, checked.event)
    return Opened(
        None if tf else content,
        tf,
        bf,
        transient,
        None,
        document.signer,
        encrypted,
        events,
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


def _unpack(part: Attachment, policy: _PayloadPolicy) -> _Unpacked:
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


def _check_document_signer(signer: x509.Certificate, policy: _PayloadPolicy) -> _SignerCheck:
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


@dataclass(frozen=True, slots=True)
class Business:
    msghead: MsgHead | None
    findings: tuple[Finding, ...]
    content: ContentResult | None


@dataclass(frozen=True, slots=True)
class BusinessHead:
    """The MsgHead read and checked; `fmt` is the content format to run next (None when the
    message stops here), `keys` what history that content needs. `source`: the spool the
    content is streamed from (`fmt.check_in_msghead`); None when it is read from the tree
    (`msghead.content`)."""

    msghead: MsgHead | None
    findings: tuple[Finding, ...]
    fmt: ContentFormat | None
    keys: HistoryKeys
    source: IO[bytes] | None = None


# A spooled MsgHead of at least this many bytes is read as a stream: its header fields from
# an iterparse that drops the content's elements as they end, the content by the format's
# streaming check. 0: every spool (the same findings either way; one path to test).
STREAM_MIN_BYTES = 0


class _Collected:
    """The history keys of each content root a streamed MsgHead holds, collected by the
    format that reads that root (`ContentFormat.key_collector`) as the stream ends its
    children: the keys' own pass over the document is then not needed."""

    def __init__(self) -> None:
        self._by_root: dict[etree._Element, tuple[ContentFormat, KeyCollector] | None] = {}

    def child(self, el: etree._Element) -> None:
        root = el.getparent()
        if root is None:
            return
        if root not in self._by_root:
            self._by_root[root] = _collector_for(root)
        found = self._by_root[root]
        if found is not None:
            found[1].read(el)

    def keys(self, fmt: ContentFormat, content: etree._Element) -> HistoryKeys | None:
        found = self._by_root.get(content)
        if found is None or found[0] is not fmt:
            return None
        return found[1].keys()


def _collector_for(root: etree._Element) -> tuple[ContentFormat, KeyCollector] | None:
    for fmt in builtin.formats():
        if fmt.key_collector is not None and root.tag == fmt.root_tag:
            return fmt, fmt.key_collector()
    return None


def _read_head(
    content: bytes | IO[bytes],
) -> tuple[MsgHeadReading, IO[bytes] | None, _Collected | None]:
    """MsgHead read: from a spool as a stream when it is large enough and the streamed
    reading can promise the tree's answer (then the spool and the keys collected on the way
    are returned), else as a tree."""
    if isinstance(content, bytes):
        return read_msghead(content, huge=True), None, None
    content.seek(0, 2)
    size = content.tell()
    content.seek(0)
    if size >= STREAM_MIN_BYTES:
        collected = _Collected()
        streamed = read_msghead_stream(content, collected.child)
        content.seek(0)
        if streamed is not None:
            return streamed, content, collected
    return read_msghead(read_all(content), huge=True), None, None


def read_business(
    content: bytes | IO[bytes],
    *,
    now: datetime,
    ebxml_from_her: str | None,
    ebxml_to_her: str | None,
    party_her: str | None,
    our_her_ids: Collection[str],
    skew: timedelta,
) -> BusinessHead:
    """MsgHead: structure, then the context checks; picks the content format it names.
    `content`: the MsgHead's bytes, or a spool holding them (at position 0)."""
    reading, source, collected = _read_head(content)
    head = reading.msghead
    findings = list(reading.findings)
    if head is None:
        return BusinessHead(None, tuple(findings), None, HistoryKeys())
    supported = {f.msg_type for f in builtin.formats()}
    findings.extend(
        check_msghead(
            head,
            now=now,
            supported_types=supported,
            ebxml_from_her_id=ebxml_from_her,
            ebxml_to_her_id=ebxml_to_her,
            party_her_id=party_her,
            our_her_ids=our_her_ids,
            max_clock_skew=skew,
        )
    )
    fmt = builtin.lookup(head.type_v) if head.type_v else None
    if (
        fmt is None
        or head.content is None
        or any(f.rule.consequence is Consequence.REJECT_MESSAGE for f in findings)
    ):
        return BusinessHead(head, tuple(findings), None, HistoryKeys())
    if source is not None and fmt.check_in_msghead is not None:
        keys = collected.keys(fmt, head.content) if collected is not None else None
        if keys is None:
            keys = _streamed_keys(fmt, source)
        if keys is not None:
            return BusinessHead(head, tuple(findings), fmt, keys, source)
    element: etree._Element = head.content
    if source is not None:  # the format reads the tree: the MsgHead's, whole
        tree = _tree_head(source)
        assert tree is not None  # read as the stream was
        assert tree.content is not None
        element = tree.content
        head = replace(head, content=element, signature=tree.signature, root=tree.root)
    keys = fmt.history_keys(element) if fmt.history_keys else HistoryKeys()
    return BusinessHead(head, tuple(findings), fmt, keys)


def _streamed_keys(fmt: ContentFormat, source: IO[bytes]) -> HistoryKeys | None:
    if fmt.history_keys is None:
        return HistoryKeys()
    if fmt.history_keys_in_msghead is None:
        return None
    source.seek(0)
    try:
        return fmt.history_keys_in_msghead(source)
    finally:
        source.seek(0)


def _tree_head(source: IO[bytes]) -> MsgHead | None:
    """The MsgHead of a spool read as a whole tree (where the streaming path hands over)."""
    return read_msghead(read_all(source), huge=True).msghead


def check_content(read: BusinessHead, context: ContentContext) -> Business:
    """The content format's schema and rules, after `read_business`: streamed from the spool
    when `read_business` read it so, else on MsgHead's Content element."""
    if read.fmt is None or read.msghead is None or read.msghead.content is None:
        return Business(read.msghead, read.findings, None)
    gen_date = read.msghead.gen_date
    if context.extracted_at is None and gen_date is not None:
        # The extraction is as late as GenDate, but never after we received it (a clock ahead)
        context = replace(context, extracted_at=min(gen_date, context.now))
    result: ContentResult | None = None
    if read.source is not None and read.fmt.check_in_msghead is not None:
        read.source.seek(0)
        try:
            result = read.fmt.check_in_msghead(read.source, context)
        finally:
            read.source.seek(0)
    if result is None:
        element: etree._Element | None = read.msghead.content
        if read.source is not None:
            tree = _tree_head(read.source)
            element = tree.content if tree is not None else None
        assert element is not None  # read as `read_business` read it
        result = read.fmt.check(element, context)
    return Business(read.msghead, (*read.findings, *result.findings), result)


def check_business(
    content: bytes | IO[bytes],
    *,
    now: datetime,
    ebxml_from_her: str | None,
    ebxml_to_her: str | None,
    party_her: str | None,
    our_her_ids: Collection[str],
    skew: timedelta,
    context: ContentContext,
) -> Business:
    """MsgHead, then the content format it names, with a history given up front (offline).
    From a spool (at position 0) both are read as streams, as the intake reads them."""
    read = read_business(
        content,
        now=now,
        ebxml_from_her=ebxml_from_her,
        ebxml_to_her=ebxml_to_her,
        party_her=party_her,
        our_her_ids=our_her_ids,
        skew=skew,
    )
    return check_content(read, context)


@dataclass(frozen=True, slots=True)
class BuiltReceipt:
    apprec: bytes
    apprec_id: str
    status: AppRecStatus
    reply: ebuild.BuiltMessage


def build_apprec_reply(
    findings: Sequence[Finding],
    *,
    header: EbmsHeader,
    msghead: MsgHead | None,
    our_her: str,
    our_name: str,
    sender_name: str | None,
    now: datetime,
    apprec_id: str,
    reply_message_id: str,
    version: AppRecVersion,
    software_version: str,
    encrypt_to: x509.Certificate | None,
    signer: KeyPair | None,
) -> BuiltReceipt:
    """The AppRec for the findings, encrypted to the sender, in a signed ebXML reply with the
    Acknowledgment."""
    from app.apprec.build import original_from_msghead, receiver_from_msghead

    fallback_sender = AppRecParty(name=sender_name, her_id=header.from_party.her_id)
    original = original_from_msghead(
        msghead, received_at=now, fallback_id=header.message_id, fallback_type=header.action
    )
    apprec = build_receipt(
        findings,
        sender=AppRecParty(name=our_name, her_id=our_her),
        receiver=receiver_from_msghead(msghead, fallback=fallback_sender),
        original=original,
        now=now,
        apprec_id=apprec_id,
        version=version,
        software_version=software_version,
    )
    status = receipt_outcome(findings).status
    return wrap_apprec(
        apprec,
        apprec_id=apprec_id,
        status=status,
        header=header,
        now=now,
        reply_message_id=reply_message_id,
        encrypt_to=encrypt_to,
        signer=signer,
    )


def wrap_apprec(
    apprec: bytes,
    *,
    apprec_id: str,
    status: AppRecStatus,
    header: EbmsHeader,
    now: datetime,
    reply_message_id: str,
    encrypt_to: x509.Certificate | None,
    signer: KeyPair | None,
) -> BuiltReceipt:
    """An AppRec (new, or a stored one sent again) signed, encrypted to the sender and put in
    a signed ebXML reply with the Acknowledgment of `header`."""
    # The AppRec schema has no place for ds:Signature: the document is signed as CMS
    # SignedData and then encrypted (sign-then-encrypt), as AMQP-style senders do. Without an
    # encryption certificate it goes as plain XML, so it is not signed for nothing.
    if encrypt_to is not None:
        document = cms.sign_data(apprec, signer) if signer is not None else apprec
        payload = ebuild.Payload(
            cms.encrypt_enveloped(document, encrypt_to),
            "application/pkcs7-mime; smime-type=enveloped-data",
        )
    else:
        payload = ebuild.Payload(apprec, "text/xml; charset=UTF-8")
    reply = ebuild.build_reply(
        header,
        message_id=reply_message_id,
        timestamp=now,
        apprec=payload,
        sign=envelope_signer(signer),
    )
    return BuiltReceipt(apprec, apprec_id, status, reply)


def envelope_signer(key: KeyPair | None) -> ebuild.Signer | None:
    """The security layer's envelope signature as the builders' Signer."""
    if key is None:
        return None

    def sign(root: etree._Element, attachments: Mapping[str, bytes]) -> etree._Element:
        return xmldsig.sign_envelope(root, attachments, key)

    return sign
