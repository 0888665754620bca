"""Read an AppRec (v1.0 or v1.1) back: for our own receipts in tests and the CLI, and for
receipts partners send us."""

from __future__ import annotations

from lxml import etree

from app.apprec.model import (
    AppRec,
    AppRecError,
    AppRecParty,
    AppRecVersion,
    OriginalMsgRef,
)
from app.core.schemas import load_schema
from app.core.xmlparse import XmlRejected, parse_xml
from app.msghead.xmlutil import parse_xs_datetime, schema_errors

_SCHEMAS = {
    AppRecVersion.V1_0: "apprec/apprec-v1.0.xsd",
    AppRecVersion.V1_1: "apprec/apprec-v1.1.xsd",
}


class AppRecInvalid(ValueError):
    """The bytes are not a valid AppRec v1.0 or v1.1."""


def _child(parent: etree._Element, ns: str, path: str) -> etree._Element | None:
    tags = "/".join(f"{{{ns}}}{p}" for p in path.split("/"))
    return parent.find(tags)


def _text(parent: etree._Element, ns: str, path: str) -> str | None:
    el = _child(parent, ns, path)
    return (el.text or "").strip() if el is not None else None


def _attr(el: etree._Element | None, name: str) -> str | None:
    if el is None:
        return None
    value = el.get(name)
    return value.strip() if value is not None else None


def _party(parent: etree._Element, ns: str, name: str) -> AppRecParty:
    party = _child(parent, ns, name)
    assert party is not None  # guaranteed by the schema
    hcp = _child(party, ns, "HCP")
    assert hcp is not None
    who = _child(hcp, ns, "Inst")
    kind = "Inst"
    if who is None:
        who, kind = _child(hcp, ns, "HCProf"), "HCProf"
    assert who is not None
    return AppRecParty(
        role=_attr(_child(party, ns, "Role"), "V"),
        kind=kind,
        name=_text(who, ns, "Name"),
        id=_text(who, ns, "Id"),
        id_type=_attr(_child(who, ns, "TypeId"), "V"),
    )


def parse_apprec(data: bytes) -> AppRec:
    """Parse and validate (against our own AppRec schemas) an AppRec v1.0 or v1.1.

    Raises AppRecInvalid when the bytes are not XML, not an AppRec of a known version, or do
    not validate. The status is kept as given, even outside kodeverk 8258.
    """
    try:
        root = parse_xml(data)
    except XmlRejected as exc:
        raise AppRecInvalid(str(exc)) from exc
    qname = etree.QName(root)
    version = AppRecVersion.from_namespace(qname.namespace)
    if qname.localname != "AppRec" or version is None:
        raise AppRecInvalid(
            f"rotelementet {{{qname.namespace or ''}}}{qname.localname} er ikke AppRec v1.0/v1.1"
        )
    errors = schema_errors(load_schema(_SCHEMAS[version]), root)
    if errors:
        first = errors[0]
        raise AppRecInvalid(
            f"AppRec v{version.value} validerer ikke ved {first.path} (linje {first.line}): "
            f"{first.message}"
        )
    ns = version.namespace
    gen_raw = _text(root, ns, "GenDate") or ""
    status_el = _child(root, ns, "Status")
    orig_type = _child(root, ns, "OriginalMsgId/MsgType")
    return AppRec(
        version=version,
        mig_version=_text(root, ns, "MIGversion") or "",
        msg_type=_attr(_child(root, ns, "MsgType"), "V"),
        software_name=_text(root, ns, "SoftwareName"),
        software_version=_text(root, ns, "SoftwareVersion"),
        gen_date_raw=gen_raw,
        gen_date=parse_xs_datetime(gen_raw),
        id=_text(root, ns, "Id") or "",
        sender=_party(root, ns, "Sender"),
        receiver=_party(root, ns, "Receiver"),
        status=_attr(status_el, "V") or "",
        status_dn=_attr(status_el, "DN"),
        errors=tuple(
            AppRecError(
                code=_attr(e, "V") or "",
                dn=e.get("DN"),
                ot=e.get("OT"),
                system=_attr(e, "S"),
            )
            for e in root.iterchildren(f"{{{ns}}}Error")
        ),
        original=OriginalMsgRef(
            msg_type=_attr(orig_type, "V"),
            msg_type_dn=_attr(orig_type, "DN"),
            issue_date=_text(root, ns, "OriginalMsgId/IssueDate") or "",
            id=_text(root, ns, "OriginalMsgId/Id") or "",
        ),
    )
