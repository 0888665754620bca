"""Build AppRec v1.1 (default) or v1.0 bytes.

Both versions have the same instance structure (they differ in namespace and MIGversion).
Element types, as in the official XSDs: MsgType, Status, Role, Inst/TypeId and
OriginalMsgId/MsgType are CS (V, DN; no S); Error is a CV (V, S, DN, OT).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from lxml import etree

from app.apprec.mapping import DEFAULT_MAX_ERRORS, receipt_outcome
from app.apprec.model import AppRecError, AppRecStatus, AppRecVersion, OriginalMsgRef, Party
from app.core.findings import Finding
from app.core.xmlparse import xml_safe
from app.msghead.model import MsgHead
from app.msghead.xmlutil import format_xs_datetime, is_xs_datetime

SOFTWARE_NAME = "kpr-mottak"
UNKNOWN_TYPE_DN = "Ukjent meldingstype"


def original_from_msghead(
    head: MsgHead | None,
    *,
    received_at: datetime,
    fallback_id: str | None = None,
    fallback_type: str | None = None,
) -> OriginalMsgRef:
    """OriginalMsgId for a receipt, from whatever of the MsgHead could be read.

    Without a usable MsgHead (or with fields missing) it falls back to what the transport
    knew: `fallback_id` (e.g. the ebXML MessageId), `fallback_type` (e.g. the ebXML Action)
    and `received_at` as IssueDate, so the receipt still validates.
    """
    msg_type = head.type_v if head is not None else None
    msg_type_dn = head.msg_type.dn if head is not None and head.msg_type is not None else None
    if not msg_type:
        msg_type, msg_type_dn = fallback_type, None
    if not msg_type:
        msg_type_dn = UNKNOWN_TYPE_DN
    raw = head.gen_date_raw if head is not None else None
    issue_date = raw if raw and is_xs_datetime(raw) else format_xs_datetime(received_at)
    msg_id = (head.msg_id if head is not None else None) or fallback_id or ""
    return OriginalMsgRef(
        msg_type=msg_type or None, msg_type_dn=msg_type_dn, issue_date=issue_date, id=msg_id
    )


def receiver_from_msghead(head: MsgHead | None, *, fallback: Party) -> Party:
    """The AppRec Receiver: the original sender organisation from the MsgHead, else
    `fallback` (e.g. the registered party of the ebXML From HER-id)."""
    if head is None or head.sender is None or head.sender.her_id is None:
        return fallback
    return Party(name=head.sender.communication_party_name, her_id=head.sender.her_id)


class _Writer:
    def __init__(self, version: AppRecVersion) -> None:
        self.ns = version.namespace

    def el(self, parent: etree._Element | None, name: str, text: str | None = None,
           **attrs: str | None) -> etree._Element:  # fmt: skip
        tag = f"{{{self.ns}}}{name}"
        node = (
            # Default namespace (None prefix), which lxml-stubs does not type.
            etree.Element(tag, nsmap={None: self.ns})  # type: ignore[dict-item]
            if parent is None
            else etree.SubElement(parent, tag)
        )
        for key, value in attrs.items():
            if value is not None:
                node.set(key, xml_safe(value))
        if text is not None:
            node.text = xml_safe(text)
        return node

    def party(self, parent: etree._Element, name: str, party: Party) -> None:
        inst = self.el(self.el(self.el(parent, name), "HCP"), "Inst")
        if party.name:
            self.el(inst, "Name", party.name)
        if party.her_id:
            self.el(inst, "Id", party.her_id)
            self.el(inst, "TypeId", V="HER", DN="HER-id")


def build_apprec(
    *,
    status: AppRecStatus,
    errors: Sequence[AppRecError],
    sender: Party,
    receiver: Party,
    original: OriginalMsgRef,
    now: datetime,
    apprec_id: str | None = None,
    version: AppRecVersion = AppRecVersion.V1_1,
    software_name: str | None = SOFTWARE_NAME,
    software_version: str | None = None,
) -> bytes:
    """One AppRec as UTF-8 bytes with an XML declaration.

    `sender` is KPR with the HER-id of the address the message came to; `receiver` the
    original sender organisation. `apprec_id` defaults to a new UUID4. `now` (aware) is GenDate.
    """
    w = _Writer(version)
    root = w.el(None, "AppRec")
    w.el(root, "MsgType", V="APPREC", DN="Applikasjonskvittering")
    w.el(root, "MIGversion", version.mig_version)
    if software_name:
        w.el(root, "SoftwareName", software_name)
    if software_version:
        w.el(root, "SoftwareVersion", software_version)
    w.el(root, "GenDate", format_xs_datetime(now))
    w.el(root, "Id", apprec_id or str(uuid.uuid4()))
    w.party(root, "Sender", sender)
    w.party(root, "Receiver", receiver)
    w.el(root, "Status", V=status.value, DN=status.dn)
    for err in errors:
        w.el(root, "Error", V=err.code, S=err.system, DN=err.dn, OT=err.ot)
    orig = w.el(root, "OriginalMsgId")
    w.el(orig, "MsgType", V=original.msg_type, DN=original.msg_type_dn)
    w.el(orig, "IssueDate", original.issue_date)
    w.el(orig, "Id", original.id)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def build_receipt(
    findings: Sequence[Finding],
    *,
    sender: Party,
    receiver: Party,
    original: OriginalMsgRef,
    now: datetime,
    apprec_id: str | None = None,
    version: AppRecVersion = AppRecVersion.V1_1,
    software_version: str | None = None,
    max_errors: int = DEFAULT_MAX_ERRORS,
) -> bytes:
    """The AppRec for all findings of one message: `receipt_outcome` + `build_apprec`."""
    outcome = receipt_outcome(findings, max_errors=max_errors)
    return build_apprec(
        status=outcome.status,
        errors=outcome.errors,
        sender=sender,
        receiver=receiver,
        original=original,
        now=now,
        apprec_id=apprec_id,
        version=version,
        software_version=software_version,
    )
