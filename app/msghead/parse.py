"""Read MsgHead v1.2 bytes: hardened parse, structure check against our own schema, and a
lenient extraction of the fields the service needs."""

from __future__ import annotations

from lxml import etree

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


def _extract(root: etree._Element) -> tuple[MsgHead, list[Finding]]:
    findings: list[Finding] = []
    info = root.find(_q("MsgInfo"))

    mig = _text(info, "MIGversion")
    if mig is not None and mig != MIG_VERSION:
        findings.append(
            _finding(
                rules.MIGVERSION_WRONG,
                f"{_MSGINFO}/MIGversion",
                f"MIGversion er '{mig[:60]}', men skal være '{MIG_VERSION}' for MsgHead v1.2.",
            )
        )

    gen_raw = _text(info, "GenDate")
    gen = parse_xs_datetime(gen_raw) if gen_raw else None
    if not gen_raw:
        findings.append(
            _finding(
                rules.GENDATE_MISSING,
                f"{_MSGINFO}/GenDate",
                "MsgInfo/GenDate mangler eller er tom. Oppgi når meldingen ble laget, "
                "f.eks. 2018-11-20T12:00:00.",
            )
        )
    elif gen is None:
        findings.append(
            _finding(
                rules.GENDATE_INVALID,
                f"{_MSGINFO}/GenDate",
                f"MsgInfo/GenDate '{gen_raw[:40]}' er ikke et gyldig tidspunkt (xs:dateTime, "
                "f.eks. 2018-11-20T12:00:00 eller 2018-11-20T12:00:00+01:00).",
            )
        )

    msg_id = _text(info, "MsgId")
    if not msg_id:
        findings.append(
            _finding(
                rules.MSGID_MISSING,
                f"{_MSGINFO}/MsgId",
                "MsgInfo/MsgId mangler eller er tom. Hver melding skal ha en unik "
                "identifikator (f.eks. en GUID).",
            )
        )

    conv_el = info.find(_q("ConversationRef")) if info is not None else None
    conversation = None
    if conv_el is not None:
        conversation = ConversationRef(
            ref_to_parent=_text(conv_el, "RefToParent") or "",
            ref_to_conversation=_text(conv_el, "RefToConversation") or "",
        )

    documents = root.xpath("mh:Document | mh:PatientReport/mh:Document", namespaces=_NS)
    content: etree._Element | None = None
    if isinstance(documents, list) and documents:
        first = documents[0]
        if isinstance(first, etree._Element):
            content_el = first.find(f"{_q('RefDoc')}/{_q('Content')}")
            if content_el is not None:
                content = next(
                    (c for c in content_el.iterchildren() if isinstance(c.tag, str)), None
                )
            if content is None:
                findings.append(
                    _finding(
                        rules.CONTENT_MISSING,
                        element_path(first) + "/RefDoc/Content",
                        "Document/RefDoc/Content mangler eller har ikke noe XML-element. "
                        "Meldingen skal ha innholdet (f.eks. IPLOS <Melding>) inne i Content, "
                        "ikke som FileReference.",
                    )
                )
    doc_count = len(documents) if isinstance(documents, list) else 0

    signature = None
    for child in root.iterchildren(f"{{{DSIG_NS}}}Signature"):
        signature = child

    def party(name: str) -> Organisation | None:
        el = info.find(_q(name)) if info is not None else None
        return _organisation(el.find(_q("Organisation")) if el is not None else None)

    ack = _code(info.find(_q("Ack"))) if info is not None else None
    head = MsgHead(
        msg_type=_code(info.find(_q("Type")) if info is not None else None),
        mig_version=mig,
        gen_date_raw=gen_raw,
        gen_date=gen,
        msg_id=msg_id or None,
        ack=ack.v if ack is not None else None,
        conversation_ref=conversation,
        sender=party("Sender"),
        receiver=party("Receiver"),
        content=content,
        document_count=doc_count,
        signature=signature,
        root=root,
    )
    return head, findings


def read_msghead(data: bytes, *, huge: bool = False) -> MsgHeadReading:
    """Parse and structure-check MsgHead v1.2 bytes.

    `huge` lifts lxml's size limits for large messages (up to the 50 MB NHN cap); the caller
    must already have capped the byte size. Returns `msghead=None` only when the bytes are not
    XML or not a MsgHead v1.2 at all; otherwise the model plus every structure finding (schema
    errors, MIGversion, GenDate, MsgId, missing content).
    """
    try:
        root = parse_xml(data, huge=huge)
    except XmlRejected as exc:
        return MsgHeadReading(
            msghead=None,
            findings=(
                _finding(
                    rules.NOT_XML,
                    "/",
                    f"Meldingshodet kunne ikke leses som XML: {exc}. Kontroller at dokumentet "
                    "er velformet UTF-8-XML uten DOCTYPE.",
                ),
            ),
        )
    if root.tag != _q("MsgHead"):
        found = etree.QName(root)
        return MsgHeadReading(
            msghead=None,
            findings=(
                _finding(
                    rules.NOT_MSGHEAD,
                    "/" + found.localname,
                    f"Rotelementet er '{found.localname}' i navnerommet "
                    f"'{found.namespace or ''}', men skal være 'MsgHead' i '{MSGHEAD_NS}'.",
                ),
            ),
        )

    head, specific = _extract(root)
    # Elements that a specific rule already explains need no second, vaguer schema finding.
    covered = {f.location for f in specific}
    errors = [e for e in schema_errors(load_schema(SCHEMA), root) if e.path not in covered]
    findings: list[Finding] = []
    for err in errors[:MAX_SCHEMA_FINDINGS]:
        findings.append(
            _finding(
                rules.SCHEMA_INVALID,
                err.path,
                f"Meldingshodet validerer ikke mot MsgHead v1.2 ved {err.path} "
                f"(linje {err.line}): {err.message}",
            )
        )
    if len(errors) > MAX_SCHEMA_FINDINGS:
        findings.append(
            _finding(
                rules.SCHEMA_INVALID,
                "/MsgHead",
                f"... og {len(errors) - MAX_SCHEMA_FINDINGS} valideringsfeil til i meldingshodet.",
            )
        )
    return MsgHeadReading(msghead=head, findings=tuple(findings + specific))
