"""MsgHead v1.2 as the rest of the service sees it: frozen dataclasses over the parsed tree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from app.core.findings import Finding

MSGHEAD_NS = "http://www.kith.no/xmlstds/msghead/2006-05-24"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
MIG_VERSION = "v1.2 2006-05-24"
# Kodeverk 9051 (identifier types of organisations).
IDENT_HER = "HER"
IDENT_ENH = "ENH"


@dataclass(frozen=True, slots=True)
class Code:
    """A KITH CS or CV value (`s` is None for a CS)."""

    v: str | None
    dn: str | None = None
    s: str | None = None


@dataclass(frozen=True, slots=True)
class Ident:
    """Organisation/Ident: `Id` and the `V` of its `TypeId` (HER, ENH, LIN, ...)."""

    id: str
    type: str | None


@dataclass(frozen=True, slots=True)
class Organisation:
    name: str | None
    idents: tuple[Ident, ...]
    # A nested Organisation (a department, or the communication party under its legal entity).
    sub_organisation: Organisation | None = None

    def ids_of_type(self, type_v: str) -> tuple[str, ...]:
        return tuple(i.id for i in self.idents if i.type == type_v)

    @property
    def her_id(self) -> str | None:
        """The HER-id of the communication party: the innermost organisation that has one.

        On the health network the most specific level is the address the message is sent
        from or to (the ebXML PartyId), e.g. Helsenorge.no under Helsedirektoratet.
        """
        inner = self.sub_organisation.her_id if self.sub_organisation is not None else None
        if inner is not None:
            return inner
        own = self.ids_of_type(IDENT_HER)
        return own[0] if own else None

    @property
    def all_her_ids(self) -> tuple[str, ...]:
        inner = self.sub_organisation.all_her_ids if self.sub_organisation is not None else ()
        return self.ids_of_type(IDENT_HER) + inner

    @property
    def org_number(self) -> str | None:
        """The organisation number (ENH) of the outermost organisation that has one."""
        own = self.ids_of_type(IDENT_ENH)
        if own:
            return own[0]
        return self.sub_organisation.org_number if self.sub_organisation is not None else None

    @property
    def communication_party_name(self) -> str | None:
        """Name of the organisation that owns `her_id` (for the AppRec Receiver/Inst/Name)."""
        if self.sub_organisation is not None and self.sub_organisation.her_id is not None:
            return self.sub_organisation.communication_party_name
        return self.name


@dataclass(frozen=True, slots=True)
class ConversationRef:
    ref_to_parent: str
    ref_to_conversation: str


@dataclass(frozen=True, slots=True)
class MsgHead:
    """What was found in a MsgHead. Fields are None when absent: the findings say what is
    wrong, and the AppRec builder can still name whatever original ids were readable."""

    msg_type: Code | None  # MsgInfo/Type (kodeverk 8279, e.g. KPR_IPL)
    mig_version: str | None
    gen_date_raw: str | None  # MsgInfo/GenDate as given
    gen_date: datetime | None  # aware; no zone in the text means Europe/Oslo
    msg_id: str | None
    ack: str | None  # MsgInfo/Ack/@V: "J" or "N"
    conversation_ref: ConversationRef | None
    sender: Organisation | None
    receiver: Organisation | None
    # Root element inside Document/RefDoc/Content of the first Document (e.g. IPLOS <Melding>);
    # the content plug-in validates it with its own schema.
    content: etree._Element | None
    document_count: int
    # The enveloped ds:Signature (last child of MsgHead), verified by the security layer.
    signature: etree._Element | None
    root: etree._Element

    @property
    def has_signature(self) -> bool:
        return self.signature is not None

    @property
    def type_v(self) -> str | None:
        return self.msg_type.v if self.msg_type is not None else None

    @property
    def sender_her_id(self) -> str | None:
        return self.sender.her_id if self.sender is not None else None

    @property
    def receiver_her_id(self) -> str | None:
        return self.receiver.her_id if self.receiver is not None else None


@dataclass(frozen=True, slots=True)
class MsgHeadReading:
    """The result of reading MsgHead bytes: the model (None when the bytes are not a readable
    MsgHead at all) and the findings of the structure checks."""

    msghead: MsgHead | None
    findings: tuple[Finding, ...]
