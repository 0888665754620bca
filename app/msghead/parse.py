"""Read MsgHead v1.2 bytes: hardened parse, structure check against our own schema, and a
lenient extraction of the fields the service needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from lxml import etree

from app.core import xmlparse
from app.core.findings import Finding, Rule
from app.core.schemas import load_schema
from app.core.xmlparse import XmlRejected, parse_xml
from app.msghead import rules
from app.msghead.model import (
    DSIG_NS,
    MIG_VERSION,
    MSGHEAD_NS,
    Code,
    ConversationRef,
    Ident,
    MsgHead,
    MsgHeadReading,
    Organisation,
)
from app.msghead.xmlutil import element_path, parse_xs_datetime, schema_errors

SCHEMA = "msghead/msghead-v1.2.xsd"
# A broken generator can yield thousands of schema errors; the first ones say enough.
MAX_SCHEMA_FINDINGS = 10

_NS = {"mh": MSGHEAD_NS, "ds": DSIG_NS}
_MSGINFO = "/MsgHead/MsgInfo"


def _q(name: str) -> str:
    return f"{{{MSGHEAD_NS}}}{name}"


def _text(parent: etree._Element | None, name: str) -> str | None:
    if parent is None:
        return None
    el = parent.find(_q(name))
    if el is None:
        return None
    return (el.text or "").strip()


def _code(el: etree._Element | None) -> Code | None:
    if el is None:
        return None
    v = el.get("V")
    return Code(v=v.strip() if v is not None else None, dn=el.get("DN"), s=el.get("S"))


def _organisation(el: etree._Element | None) -> Organisation | None:
    if el is None:
        return None
    idents: list[Ident] = []
    for ident in el.findall(_q("Ident")):
        id_text = _text(ident, "Id")
        type_code = _code(ident.find(_q("TypeId")))
        if id_text:
            idents.append(Ident(id=id_text, type=type_code.v if type_code else None))
    return Organisation(
        name=_text(el, "OrganisationName"),
        idents=tuple(idents),
        sub_organisation=_organisation(el.find(_q("Organisation"))),
    )


def _finding(rule: Rule, location: str, detail: str) -> Finding:
    return Finding(rule=rule, location=location, detail=detail)


@dataclass(frozen=True, slots=True, kw_only=True)
class _GenDate:
    raw: str | None
    value: datetime | None
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Content:
    element: etree._Element | None  # the first element inside Document/RefDoc/Content
    document_count: int
    findings: tuple[Finding, ...]


def _extract(root: etree._Element) -> tuple[MsgHead, tuple[Finding, ...]]:
    info = root.find(_q("MsgInfo"))
    mig = _text(info, "MIGversion")
    gen = _gen_date(info)
    msg_id = _text(info, "MsgId")
    content = _content(root)
    ack = _code(_child(info, "Ack"))
    head = MsgHead(
        msg_type=_code(_child(info, "Type")),
        mig_version=mig,
        gen_date_raw=gen.raw,
        gen_date=gen.value,
        msg_id=msg_id or None,
        ack=ack.v if ack is not None else None,
        conversation_ref=_conversation(_child(info, "ConversationRef")),
        sender=_party(info, "Sender"),
        receiver=_party(info, "Receiver"),
        content=content.element,
        document_count=content.document_count,
        signature=_signature(root),
        root=root,
    )
    findings = (*_mig_findings(mig), *gen.findings, *_msg_id_findings(msg_id), *content.findings)
    return head, findings


def _child(el: etree._Element | None, name: str) -> etree._Element | None:
    return el.find(_q(name)) if el is not None else None


def _party(info: etree._Element | None, name: str) -> Organisation | None:
    return _organisation(_child(_child(info, name), "Organisation"))


def _signature(root: etree._Element) -> etree._Element | None:
    """The last ds:Signature directly under MsgHead (the enveloped one)."""
    signature = None
    for child in root.iterchildren(f"{{{DSIG_NS}}}Signature"):
        signature = child
    return signature


def _conversation(el: etree._Element | None) -> ConversationRef | None:
    if el is None:
        return None
    return ConversationRef(
        ref_to_parent=_text(el, "RefToParent") or "",
        ref_to_conversation=_text(el, "RefToConversation") or "",
    )


def _mig_findings(mig: str | None) -> tuple[Finding, ...]:
    if mig is None or mig == MIG_VERSION:
        return ()
    return (
        _finding(
            rules.MIGVERSION_WRONG,
            f"{_MSGINFO}/MIGversion",
            f"MIGversion er '{mig[:60]}', men skal være '{MIG_VERSION}' for MsgHead v1.2.",
        ),
    )


def _gen_date(info: etree._Element | None) -> _GenDate:
    raw = _text(info, "GenDate")
    value = parse_xs_datetime(raw) if raw else None
    if not raw:
        problem = _finding(
            rules.GENDATE_MISSING,
            f"{_MSGINFO}/GenDate",
            "MsgInfo/GenDate mangler eller er tom. Oppgi når meldingen ble laget, "
            "f.eks. 2018-11-20T12:00:00.",
        )
    elif value is None:
        problem = _finding(
            rules.GENDATE_INVALID,
            f"{_MSGINFO}/GenDate",
            f"MsgInfo/GenDate '{raw[:40]}' er ikke et gyldig tidspunkt (xs:dateTime, "
            "f.eks. 2018-11-20T12:00:00 eller 2018-11-20T12:00:00+01:00).",
        )
    else:
        return _GenDate(raw=raw, value=value, findings=())
    return _GenDate(raw=raw, value=value, findings=(problem,))


def _msg_id_findings(msg_id: str | None) -> tuple[Finding, ...]:
    if msg_id:
        return ()
    return (
        _finding(
            rules.MSGID_MISSING,
            f"{_MSGINFO}/MsgId",
            "MsgInfo/MsgId mangler eller er tom. Hver melding skal ha en unik "
            "identifikator (f.eks. en GUID).",
        ),
    )


def _content(root: etree._Element) -> _Content:
    """The business content: the first element inside the first Document's RefDoc/Content."""
    documents = root.xpath("mh:Document | mh:PatientReport/mh:Document", namespaces=_NS)
    count = len(documents) if isinstance(documents, list) else 0
    first = documents[0] if isinstance(documents, list) and documents else None
    if not isinstance(first, etree._Element):
        return _Content(element=None, document_count=count, findings=())
    content_el = first.find(f"{_q('RefDoc')}/{_q('Content')}")
    content = (
        next((c for c in content_el.iterchildren() if isinstance(c.tag, str)), None)
        if content_el is not None
        else None
    )
    if content is not None:
        return _Content(element=content, document_count=count, findings=())
    missing = _finding(
        rules.CONTENT_MISSING,
        element_path(first) + "/RefDoc/Content",
        "Document/RefDoc/Content mangler eller har ikke noe XML-element. "
        "Meldingen skal ha innholdet (f.eks. IPLOS <Melding>) inne i Content, "
        "ikke som FileReference.",
    )
    return _Content(element=None, document_count=count, findings=(missing,))


def read_msghead(data: bytes, *, huge: bool = False) -> MsgHeadReading:
    """Parse and structure-check MsgHead v1.2 bytes.

    `huge` lifts lxml's size limits for large messages (up to the 50 MB NHN cap); the caller
    must already have capped the byte size. Returns `msghead=None` only when the bytes are not
    XML or not a MsgHead v1.2 at all; otherwise the model plus every structure finding (schema
    errors, MIGversion, GenDate, MsgId, missing content).
    """
    root = _read_root(data, huge=huge)
    if isinstance(root, Finding):
        return MsgHeadReading(msghead=None, findings=(root,))
    head, specific = _extract(root)
    # Elements that a specific rule already explains need no second, vaguer schema finding.
    covered = {f.location for f in specific}
    return MsgHeadReading(msghead=head, findings=(*_schema_findings(root, covered), *specific))


def _read_root(data: bytes, *, huge: bool) -> etree._Element | Finding:
    """The MsgHead root element, or why the bytes are no MsgHead."""
    try:
        root = parse_xml(data, huge=huge)
    except XmlRejected as exc:
        return _finding(
            rules.NOT_XML,
            "/",
            f"Meldingshodet kunne ikke leses som XML: {exc}. Kontroller at dokumentet "
            "er velformet UTF-8-XML uten DOCTYPE.",
        )
    if root.tag != _q("MsgHead"):
        found = etree.QName(root)
        return _finding(
            rules.NOT_MSGHEAD,
            "/" + found.localname,
            f"Rotelementet er '{found.localname}' i navnerommet "
            f"'{found.namespace or ''}', men skal være 'MsgHead' i '{MSGHEAD_NS}'.",
        )
    return root


def _schema_findings(root: etree._Element, covered: set[str]) -> tuple[Finding, ...]:
    """The first schema errors (those a specific finding does not already explain), and a
    count of the rest."""
    errors = [e for e in schema_errors(load_schema(SCHEMA), root) if e.path not in covered]
    shown = tuple(
        _finding(
            rules.SCHEMA_INVALID,
            err.path,
            f"Meldingshodet validerer ikke mot MsgHead v1.2 ved {err.path} "
            f"(linje {err.line}): {err.message}",
        )
        for err in errors[:MAX_SCHEMA_FINDINGS]
    )
    if len(errors) <= MAX_SCHEMA_FINDINGS:
        return shown
    rest = _finding(
        rules.SCHEMA_INVALID,
        "/MsgHead",
        f"... og {len(errors) - MAX_SCHEMA_FINDINGS} valideringsfeil til i meldingshodet.",
    )
    return (*shown, rest)


_XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
# Namespaces the MsgHead schema declares elements of: inside Content, the lax wildcard would
# validate such an element (or one with xsi:type), so pruning it could change the findings.
_DECLARED = (f"{{{MSGHEAD_NS}}}", f"{{{DSIG_NS}}}")
_CONTENT = f"{{{MSGHEAD_NS}}}Content"


class _Unsure(Exception):
    """The streamed reading could differ from `read_msghead` on the whole document."""


def read_msghead_stream(
    source: IO[bytes], content_child: Callable[[etree._Element], None] | None = None
) -> MsgHeadReading | None:
    """`read_msghead(data, huge=True)` from a binary file (read from its current position to
    the end) without keeping the business content's tree: every element below an element
    inside `Content` is dropped as soon as it has ended, so what stays is MsgHead with its
    content's root elements, empty but with their attributes (the content format reads the
    content itself, streamed). The schema's `Content` takes anything laxly: elements it has
    no declaration for are not looked into, so the findings are the same.

    None where they might not be: XML that is not well-formed or has a DOCTYPE (the tree
    path words the finding), a root that is no MsgHead, or content that holds elements the
    schema declares or xsi attributes. The caller then reads the whole document.

    `content_child`: called with each child of a content root once it has ended, whole, just
    before it is emptied (the content format reads what it needs in the same pass)."""
    events = xmlparse.iterparse(source, ("end",))
    try:
        for _, el in events:
            _prune(el, content_child)
        root = events.root
    except (etree.XMLSyntaxError, _Unsure):
        return None
    if root is None or root.tag != _q("MsgHead"):
        return None
    if getattr(root.getroottree().docinfo, "doctype", ""):
        return None
    for content in root.iter(_CONTENT):
        for top in content:
            for child in list(top):
                top.remove(child)
    head, specific = _extract(root)
    covered = {f.location for f in specific}
    return MsgHeadReading(msghead=head, findings=(*_schema_findings(root, covered), *specific))


def _prune(el: etree._Element, content_child: Callable[[etree._Element], None] | None) -> None:
    """An element ended: inside a Content, checked; a child of a content root is then handed
    to `content_child`, emptied and its earlier siblings dropped (what it held was checked as
    it ended)."""
    depth = 0
    node = el.getparent()
    while node is not None:
        depth += 1
        if node.tag == _CONTENT:
            break
        node = node.getparent()
    else:
        return
    _check_pruned(el)
    if depth == 2:
        if content_child is not None:
            content_child(el)
        parent = el.getparent()
        el.clear()
        while parent is not None and el.getprevious() is not None:
            del parent[0]


def _check_pruned(el: etree._Element) -> None:
    tag = el.tag
    if not isinstance(tag, str):
        return
    if tag.startswith(_DECLARED) or any(str(name).startswith(_XSI) for name in el.attrib):
        raise _Unsure
