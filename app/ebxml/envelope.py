"""SOAP 1.1 envelope + ebMS 2.0 header: hardened parse, schema validation, extraction."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from app.core.findings import Finding, Rule
from app.core.schemas import load_schema
from app.core.xmlparse import XmlRejected, parse_xml, schema_message, with_prefixes
from app.ebxml import rules
from app.security.xmldsig import ACTOR_NEXT, ACTOR_NEXT_MSH

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
EB_NS = "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd"
XLINK_NS = "http://www.w3.org/1999/xlink"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XML_NS = "http://www.w3.org/XML/1998/namespace"
NSMAP = {"SOAP": SOAP_NS, "eb": EB_NS, "xlink": XLINK_NS, "ds": DS_NS}

SIGNAL_SERVICE = "urn:oasis:names:tc:ebxml-msg:service"
ACTION_ACKNOWLEDGMENT = "Acknowledgment"
ACTION_MESSAGE_ERROR = "MessageError"
ACTOR_TO_PARTY_MSH = "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"
# The two actors the profile's XPath transform leaves out of the envelope signature.
UNSIGNED_ACTORS = frozenset({ACTOR_NEXT_MSH, ACTOR_NEXT})

# Bounds on the SOAP part, checked before xmlsec sees it: libxmlsec evaluates the profile's
# XPath once per node, so its cost grows with the square of the element count (20 000 empty
# elements took 40 s). A signed ebMS envelope has about 40 elements; at the cap the XPath
# takes ~15 ms (`python -m bench.envelope`).
MAX_SOAP_BYTES = 64 * 1024
MAX_SOAP_ELEMENTS = 250
MAX_SOAP_DEPTH = 16
# What the profile puts where; anything else in SOAP:Header or SOAP:Body is refused.
_HEADER_BLOCKS = frozenset(
    {
        f"{{{EB_NS}}}MessageHeader",
        f"{{{EB_NS}}}SyncReply",
        f"{{{EB_NS}}}MessageOrder",
        f"{{{EB_NS}}}AckRequested",
        f"{{{EB_NS}}}Acknowledgment",
        f"{{{EB_NS}}}ErrorList",
        f"{{{DS_NS}}}Signature",
    }
)
_BODY_BLOCKS = frozenset({f"{{{EB_NS}}}Manifest"})
# Hop-by-hop blocks an intermediary may add or change: left out of the signature, so dropped
# before reading (their content is never acted on). Any other element so marked is refused.
_DROPPABLE_UNSIGNED = frozenset({f"{{{EB_NS}}}SyncReply", f"{{{EB_NS}}}AckRequested"})

_MAX_SCHEMA_FINDINGS = 5
_DATETIME = re.compile(r"-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")


@dataclass(frozen=True, slots=True)
class PartyId:
    value: str
    type: str | None


@dataclass(frozen=True, slots=True)
class Party:
    party_ids: tuple[PartyId, ...]
    role: str | None

    @property
    def her_ids(self) -> tuple[str, ...]:
        """The PartyIds of type HER (the Norwegian profile's address)."""
        return her_ids(self.party_ids)

    @property
    def her_id(self) -> str | None:
        """The first PartyId of type HER, the one KPR addresses a party by."""
        return first_her_id(self.party_ids)


def her_ids(party_ids: Iterable[PartyId]) -> tuple[str, ...]:
    """The values of the PartyIds of type HER, in order."""
    return tuple(p.value for p in party_ids if (p.type or "").upper() == "HER")


def first_her_id(party_ids: Iterable[PartyId]) -> str | None:
    return next(iter(her_ids(party_ids)), None)


@dataclass(frozen=True, slots=True)
class Service:
    value: str
    type: str | None


@dataclass(frozen=True, slots=True)
class AckRequested:
    signed: bool
    actor: str | None


@dataclass(frozen=True, slots=True)
class Description:
    text: str
    lang: str | None


@dataclass(frozen=True, slots=True)
class ManifestReference:
    href: str
    id: str | None


@dataclass(frozen=True, slots=True)
class Acknowledgment:
    timestamp: datetime | None
    ref_to_message_id: str


@dataclass(frozen=True, slots=True)
class EbmsError:
    error_code: str
    severity: str
    location: str | None
    description: str | None


@dataclass(frozen=True, slots=True)
class EbmsHeader:
    """What the service needs from an ebMS 2.0 message's SOAP envelope."""

    version: str
    from_party: Party
    to_party: Party
    cpa_id: str
    conversation_id: str
    service: Service
    action: str
    message_id: str
    timestamp: datetime | None  # None only when not a valid xs:dateTime (schema finding)
    ref_to_message_id: str | None
    time_to_live: datetime | None
    duplicate_elimination: bool
    ack_requested: AckRequested | None
    descriptions: tuple[Description, ...]
    manifest: tuple[ManifestReference, ...]
    has_signature: bool
    # Each ds:Reference of the envelope signature's SignedInfo, serialised on its own (with the
    # namespaces in scope): what an Acknowledgment copies for non-repudiation of receipt.
    signature_references: tuple[bytes, ...]
    acknowledgment: Acknowledgment | None
    errors: tuple[EbmsError, ...]  # eb:ErrorList/eb:Error of a MessageError signal
    highest_severity: str | None

    @property
    def is_signal(self) -> bool:
        return self.service.value == SIGNAL_SERVICE


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """Whatever could be read of the sender's header, even when it is incomplete: enough to
    address a MessageError back to the sender."""

    from_party_ids: tuple[PartyId, ...] = ()
    to_party_ids: tuple[PartyId, ...] = ()
    cpa_id: str | None = None
    conversation_id: str | None = None
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class EnvelopeResult:
    header: EbmsHeader | None
    reply_context: ReplyContext
    findings: tuple[Finding, ...]


def own_schema() -> etree.XMLSchema:
    """The project's ebMS 2.0 schema (one instance per thread: validators keep state)."""
    return load_schema("ebxml/ebms-header.xsd")


def parse_datetime(text: str | None) -> datetime | None:
    """An xs:dateTime as an aware datetime; without a zone it is taken as UTC (ebMS 2.0 says
    the values are UTC)."""
    if text is None:
        return None
    text = text.strip()
    if not _DATETIME.fullmatch(text):
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _f(rule_: Rule, location: str, detail: str) -> Finding:
    return Finding(rule=rule_, location=location, detail=detail)


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    value = "".join(str(t) for t in el.itertext()).strip()
    return value or None


def _child(el: etree._Element | None, name: str, ns: str = EB_NS) -> etree._Element | None:
    if el is None:
        return None
    return el.find(f"{{{ns}}}{name}")


def _attr(el: etree._Element, name: str, ns: str | None = EB_NS) -> str | None:
    value = el.get(f"{{{ns}}}{name}" if ns else name)
    return value.strip() if value is not None else None


def _boolean(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true"}


def _party(el: etree._Element | None) -> Party:
    if el is None:
        return Party((), None)
    ids = tuple(
        PartyId(_text(p) or "", _attr(p, "type"))
        for p in el.findall(f"{{{EB_NS}}}PartyId")
        if _text(p)
    )
    return Party(ids, _text(_child(el, "Role")))


_PREFIXES = {EB_NS: "eb", SOAP_NS: "SOAP", XLINK_NS: "xlink", DS_NS: "ds"}


def _prefixed(tag: str) -> str:
    return with_prefixes(tag, _PREFIXES)


def _schema_errors(schema: etree.XMLSchema) -> list[tuple[int, str]]:
    log: Iterable[Any] = schema.error_log  # type: ignore[assignment]  # stubs lack __iter__
    return [(int(e.line), str(e.message)) for e in log]


def _local_name(tag: object) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1][:60]


def _too_complex(detail: str) -> EnvelopeResult:
    return EnvelopeResult(
        None, ReplyContext(), (_f(rules.ENVELOPE_TOO_COMPLEX, "SOAP-del", detail),)
    )


def _precheck_size(soap: bytes) -> EnvelopeResult | None:
    """Refuse an oversized SOAP part before a tree is built: bytes, then an upper bound on the
    element count (every element has a start tag; `<` cannot appear raw in text)."""
    if len(soap) > MAX_SOAP_BYTES:
        return _too_complex(
            f"SOAP-delen er {len(soap)} byte; største tillatte er {MAX_SOAP_BYTES} byte. "
            "Legg innholdet i en egen MIME-del referert fra eb:Manifest."
        )
    if soap.count(b"<") - soap.count(b"</") > MAX_SOAP_ELEMENTS:
        return _too_complex(
            f"SOAP-delen har flere enn {MAX_SOAP_ELEMENTS} elementer. En ebMS-konvolutt har "
            "bare eb:MessageHeader, ds:Signature og eb:Manifest."
        )
    return None


def _shape(root: etree._Element) -> tuple[Finding, ...]:
    """Depth, the allowed blocks, the unsigned-actor elements and the one-of-each blocks.

    Elements with the nextMSH/next actor are outside what the signature covers: a hop-by-hop
    SyncReply or AckRequested is removed from the tree here (so nothing later reads it), any
    other such element is refused. After this the tree holds only signed content."""
    if _too_deep(root):
        return (
            _f(
                rules.ENVELOPE_TOO_COMPLEX,
                "SOAP-del",
                f"SOAP-konvolutten er nøstet dypere enn {MAX_SOAP_DEPTH} nivåer.",
            ),
        )
    header = root.find(f"{{{SOAP_NS}}}Header")
    body = root.find(f"{{{SOAP_NS}}}Body")
    return (
        *_unexpected_blocks(root, header, body),
        *_unsigned_blocks(root, header),  # before counting: drops a hop-by-hop AckRequested
        *_repeated_blocks(header, body),
    )


def _too_deep(root: etree._Element) -> bool:
    return any(
        sum(1 for _ in el.iterancestors()) >= MAX_SOAP_DEPTH for el in root.iter(etree.Element)
    )


def _unexpected_blocks(
    root: etree._Element, header: etree._Element | None, body: etree._Element | None
) -> tuple[Finding, ...]:
    """Anything but SOAP:Header and SOAP:Body in the envelope, and anything but the profile's
    blocks in them."""
    outside = tuple(
        _f(
            rules.ENVELOPE_UNEXPECTED_BLOCK,
            "/SOAP:Envelope",
            f"SOAP:Envelope har elementet '{_local_name(child.tag)}'; bare SOAP:Header "
            "og SOAP:Body er tillatt.",
        )
        for child in root.iterchildren(etree.Element)
        if child is not header and child is not body
    )
    inside = tuple(
        _f(
            rules.ENVELOPE_UNEXPECTED_BLOCK,
            where,
            f"Elementet '{_local_name(child.tag)}' er ikke tillatt her. ebMS-profilen "
            "bruker bare eb:MessageHeader, eb:AckRequested, eb:SyncReply, "
            "ds:Signature (SOAP:Header) og eb:Manifest (SOAP:Body).",
        )
        for where, parent, allowed in (
            ("/SOAP:Envelope/SOAP:Header", header, _HEADER_BLOCKS),
            ("/SOAP:Envelope/SOAP:Body", body, _BODY_BLOCKS),
        )
        if parent is not None
        for child in parent.iterchildren(etree.Element)
        if child.tag not in allowed
    )
    return (*outside, *inside)


def _unsigned_blocks(root: etree._Element, header: etree._Element | None) -> tuple[Finding, ...]:
    """Removes the hop-by-hop blocks the profile allows the unsigned actor on; refuses every
    other element with that actor."""
    unsigned = [
        el for el in root.iter(etree.Element) if el.get(f"{{{SOAP_NS}}}actor") in UNSIGNED_ACTORS
    ]
    refused: list[etree._Element] = []
    for el in unsigned:
        if header is not None and el.getparent() is header and el.tag in _DROPPABLE_UNSIGNED:
            header.remove(el)
        else:
            refused.append(el)
    return tuple(
        _f(
            rules.ENVELOPE_UNSIGNED_BLOCK,
            f"{root.getroottree().getpath(el)[:200]}",
            f"Elementet '{_local_name(el.tag)}' har SOAP:actor "
            f"'{el.get(f'{{{SOAP_NS}}}actor')}' og er derfor utelatt fra signaturen. Bare "
            "eb:SyncReply og eb:AckRequested kan ha denne aktøren; fjern elementet.",
        )
        for el in refused
    )


def _repeated_blocks(
    header: etree._Element | None, body: etree._Element | None
) -> tuple[Finding, ...]:
    counted = [(header, f"{{{EB_NS}}}MessageHeader"), (header, f"{{{EB_NS}}}AckRequested")]
    counted += [(header, f"{{{DS_NS}}}Signature"), (body, f"{{{EB_NS}}}Manifest")]
    return tuple(
        _f(
            rules.ENVELOPE_BLOCK_REPEATED,
            f"/SOAP:Envelope/{_prefixed(tag)}",
            f"{_prefixed(tag)} forekommer {len(parent.findall(tag))} ganger; det skal være ett.",
        )
        for parent, tag in counted
        if parent is not None and len(parent.findall(tag)) > 1
    )


def _refused(finding: Finding) -> EnvelopeResult:
    """Nothing of the header could be read: no reply context either."""
    return EnvelopeResult(None, ReplyContext(), (finding,))


def parse_envelope(soap: bytes) -> EnvelopeResult:
    """Parse and validate the start part. Never raises for bad input.

    What is read comes only from the part of the envelope the profile's signature covers: the
    shape check refuses or removes every element with the nextMSH/next actor first."""
    refused = _precheck_size(soap)
    if refused is not None:
        return refused
    root = _read_envelope(soap)
    if isinstance(root, Finding):
        return _refused(root)
    shape = _shape(root)
    if shape:
        return EnvelopeResult(None, ReplyContext(), shape)
    soap_header = root.find(f"{{{SOAP_NS}}}Header")
    mh = _child(soap_header, "MessageHeader")
    if mh is None:
        return _refused(_header_missing())
    assert soap_header is not None  # mh was found inside it
    context = _reply_context(mh)
    missing = _missing_elements(mh, context)
    if missing:
        return EnvelopeResult(None, context, missing)
    version = _attr(mh, "version") or ""
    findings = (*_version_findings(version), *_schema_findings(root))
    header = _extract(soap_header, root, mh, version, context)
    return EnvelopeResult(header, context, findings)


def _read_envelope(soap: bytes) -> etree._Element | Finding:
    """The SOAP part's root, or why it is no SOAP 1.1 envelope."""
    try:
        root = parse_xml(soap)
    except XmlRejected as exc:
        return _f(
            rules.SOAP_NOT_XML,
            "SOAP-del",
            f"SOAP-konvolutten kan ikke leses: {exc}. Send en velformet SOAP 1.1-"
            "konvolutt uten DOCTYPE.",
        )
    if root.tag != f"{{{SOAP_NS}}}Envelope":
        return _f(
            rules.SOAP_NOT_ENVELOPE,
            "/",
            f"Rotelementet er {_prefixed(str(root.tag))[:120]}, ikke "
            f"SOAP:Envelope i navnerommet {SOAP_NS}. ebMS 2.0 bruker SOAP 1.1.",
        )
    return root


def _header_missing() -> Finding:
    return _f(
        rules.HEADER_MISSING,
        "/SOAP:Envelope/SOAP:Header",
        "SOAP-konvolutten mangler SOAP:Header/eb:MessageHeader. Legg inn "
        "eb:MessageHeader slik ebMS 2.0 krever.",
    )


def _reply_context(mh: etree._Element) -> ReplyContext:
    md = _child(mh, "MessageData")
    return ReplyContext(
        from_party_ids=_party(_child(mh, "From")).party_ids,
        to_party_ids=_party(_child(mh, "To")).party_ids,
        cpa_id=_text(_child(mh, "CPAId")),
        conversation_id=_text(_child(mh, "ConversationId")),
        message_id=_text(_child(md, "MessageId")),
    )


def _missing_elements(mh: etree._Element, context: ReplyContext) -> tuple[Finding, ...]:
    """The MessageHeader elements ebMS 2.0 requires that are missing or empty."""
    md = _child(mh, "MessageData")
    mandatory: list[tuple[str, str | None]] = [
        ("eb:From/eb:PartyId", "ok" if context.from_party_ids else None),
        ("eb:To/eb:PartyId", "ok" if context.to_party_ids else None),
        ("eb:CPAId", context.cpa_id),
        ("eb:ConversationId", context.conversation_id),
        ("eb:Service", _text(_child(mh, "Service"))),
        ("eb:Action", _text(_child(mh, "Action"))),
        ("eb:MessageData/eb:MessageId", context.message_id),
        ("eb:MessageData/eb:Timestamp", _text(_child(md, "Timestamp"))),
    ]
    return tuple(
        _f(
            rules.HEADER_ELEMENT_MISSING,
            f"/SOAP:Envelope/SOAP:Header/eb:MessageHeader/{path}",
            f"{path} mangler eller er tomt i eb:MessageHeader. Elementet er "
            "obligatorisk i ebMS 2.0; fyll det ut.",
        )
        for path, value in mandatory
        if not value
    )


def _version_findings(version: str) -> tuple[Finding, ...]:
    if version == "2.0":
        return ()
    return (
        _f(
            rules.VERSION_UNSUPPORTED,
            "/SOAP:Envelope/SOAP:Header/eb:MessageHeader/@eb:version",
            f"eb:version er '{version[:20]}'. Bare ebMS 2.0 (eb:version=\"2.0\") støttes.",
        ),
    )


def _schema_findings(root: etree._Element) -> tuple[Finding, ...]:
    schema = own_schema()
    if schema.validate(root.getroottree()):
        return ()
    return tuple(
        _f(
            rules.SCHEMA_INVALID,
            f"SOAP-del linje {line}",
            f"Skjemafeil på linje {line}: {schema_message(message, _PREFIXES)[:300]}."
            " Rett elementet slik at konvolutten følger ebMS 2.0-skjemaet.",
        )
        for line, message in _schema_errors(schema)[:_MAX_SCHEMA_FINDINGS]
    )


def _extract(
    soap_header: etree._Element,
    root: etree._Element,
    mh: etree._Element,
    version: str,
    context: ReplyContext,
) -> EbmsHeader:
    md = _child(mh, "MessageData")
    service_el = _child(mh, "Service")
    assert service_el is not None
    signature = soap_header.find(f"{{{DS_NS}}}Signature")
    error_list = _child(soap_header, "ErrorList")
    return EbmsHeader(
        version=version,
        from_party=_party(_child(mh, "From")),
        to_party=_party(_child(mh, "To")),
        cpa_id=context.cpa_id or "",
        conversation_id=context.conversation_id or "",
        service=Service(_text(service_el) or "", _attr(service_el, "type")),
        action=_text(_child(mh, "Action")) or "",
        message_id=context.message_id or "",
        timestamp=parse_datetime(_text(_child(md, "Timestamp"))),
        ref_to_message_id=_text(_child(md, "RefToMessageId")),
        time_to_live=parse_datetime(_text(_child(md, "TimeToLive"))),
        duplicate_elimination=_child(mh, "DuplicateElimination") is not None,
        ack_requested=_ack_requested(_child(soap_header, "AckRequested")),
        descriptions=_descriptions(mh),
        manifest=_manifest(_child(root.find(f"{{{SOAP_NS}}}Body"), "Manifest")),
        has_signature=signature is not None,
        signature_references=_signature_references(signature),
        acknowledgment=_acknowledgment(_child(soap_header, "Acknowledgment")),
        errors=_errors(error_list),
        highest_severity=_attr(error_list, "highestSeverity") if error_list is not None else None,
    )


def _ack_requested(el: etree._Element | None) -> AckRequested | None:
    if el is None:
        return None
    return AckRequested(signed=_boolean(_attr(el, "signed")), actor=_attr(el, "actor", SOAP_NS))


def _descriptions(mh: etree._Element) -> tuple[Description, ...]:
    return tuple(
        Description(_text(d) or "", d.get(f"{{{XML_NS}}}lang"))
        for d in mh.findall(f"{{{EB_NS}}}Description")
    )


def _manifest(manifest: etree._Element | None) -> tuple[ManifestReference, ...]:
    if manifest is None:
        return ()
    return tuple(
        ManifestReference((r.get(f"{{{XLINK_NS}}}href") or "").strip(), _attr(r, "id"))
        for r in manifest.findall(f"{{{EB_NS}}}Reference")
    )


def _signature_references(signature: etree._Element | None) -> tuple[bytes, ...]:
    if signature is None:
        return ()
    return tuple(
        etree.tostring(r, with_tail=False)
        for r in signature.findall(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}Reference")
    )


def _acknowledgment(el: etree._Element | None) -> Acknowledgment | None:
    if el is None:
        return None
    return Acknowledgment(
        timestamp=parse_datetime(_text(_child(el, "Timestamp"))),
        ref_to_message_id=_text(_child(el, "RefToMessageId")) or "",
    )


def _errors(error_list: etree._Element | None) -> tuple[EbmsError, ...]:
    if error_list is None:
        return ()
    return tuple(
        EbmsError(
            error_code=_attr(e, "errorCode") or "",
            severity=_attr(e, "severity") or "",
            location=_attr(e, "location"),
            description=_text(_child(e, "Description")),
        )
        for e in error_list.findall(f"{{{EB_NS}}}Error")
    )
