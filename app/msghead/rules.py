"""The MsgHead (business envelope) rules. Ids are stable: they are stored and published."""

from __future__ import annotations

from app.core.findings import Consequence, Layer, Rule


def _rule(
    rule_id: str, code: str | None, title: str, text_no: str, consequence: Consequence
) -> Rule:
    return Rule(
        id=rule_id,
        layer=Layer.MSGHEAD,
        consequence=consequence,
        title=title,
        text_no=text_no,
        apprec_code=code,
    )


_REJECT = Consequence.REJECT_MESSAGE

NOT_XML = _rule(
    "MSGHEAD-NOT-XML",
    "T01",
    "The business document is not well-formed XML",
    "Forretningsdokumentet er ikke velformet XML og kan ikke leses.",
    _REJECT,
)
NOT_MSGHEAD = _rule(
    "MSGHEAD-NOT-MSGHEAD",
    "T10",
    "The business document is not a MsgHead v1.2",
    "Forretningsdokumentet er ikke et meldingshode (MsgHead) versjon 1.2 "
    "(navnerom http://www.kith.no/xmlstds/msghead/2006-05-24).",
    _REJECT,
)
SCHEMA_INVALID = _rule(
    "MSGHEAD-SCHEMA-INVALID",
    "T02",
    "MsgHead does not validate against the MsgHead v1.2 schema",
    "Meldingshodet (MsgHead) validerer ikke mot XML-skjemaet for MsgHead v1.2.",
    _REJECT,
)
MIGVERSION_WRONG = _rule(
    "MSGHEAD-MIGVERSION-WRONG",
    "T02",
    "MsgInfo/MIGversion is not 'v1.2 2006-05-24'",
    "MsgInfo/MIGversion skal være 'v1.2 2006-05-24'.",
    _REJECT,
)
GENDATE_MISSING = _rule(
    "MSGHEAD-GENDATE-MISSING",
    "T02",
    "MsgInfo/GenDate is missing",
    "MsgInfo/GenDate (tidspunkt meldingen ble laget) mangler.",
    _REJECT,
)
GENDATE_INVALID = _rule(
    "MSGHEAD-GENDATE-INVALID",
    "T02",
    "MsgInfo/GenDate is not a valid date and time",
    "MsgInfo/GenDate er ikke et gyldig tidspunkt (xs:dateTime, f.eks. 2018-11-20T12:00:00).",
    _REJECT,
)
# A warning, not a rejection: the classic EPJ bug writes local time with `Z`, which puts
# GenDate an hour or two ahead; the content is sound and a rejection would lose it.
GENDATE_FUTURE = _rule(
    "MSGHEAD-GENDATE-FUTURE",
    None,
    "MsgInfo/GenDate lies in the future beyond the allowed clock skew (a warning)",
    "MsgInfo/GenDate ligger fram i tid. Meldingen er tatt imot. Kontroller klokken og "
    "tidssonen i fagsystemet (EPJ): norsk tid skal ikke merkes med Z (UTC).",
    Consequence.WARN,
)
MSGID_MISSING = _rule(
    "MSGHEAD-MSGID-MISSING",
    "E10",
    "MsgInfo/MsgId is missing or empty",
    "MsgInfo/MsgId (meldingsidentifikator) mangler eller er tom.",
    _REJECT,
)
# Checked by the caller against the database (unique per sender HER-id).
MSGID_DUPLICATE = _rule(
    "MSGHEAD-MSGID-DUPLICATE",
    "E10",
    "MsgInfo/MsgId was already used by this sender for another message",
    "MsgInfo/MsgId er allerede brukt av samme avsender i en annen melding. "
    "Hver melding skal ha en ny, unik MsgId.",
    _REJECT,
)
TYPE_UNSUPPORTED = _rule(
    "MSGHEAD-TYPE-UNSUPPORTED",
    "T10",
    "MsgInfo/Type is not a message type this receiver supports",
    "Mottakeren støtter ikke meldingstypen i MsgInfo/Type.",
    _REJECT,
)
CONTENT_MISSING = _rule(
    "MSGHEAD-CONTENT-MISSING",
    "T02",
    "Document/RefDoc/Content is missing or empty",
    "Meldingen mangler innhold: Document/RefDoc/Content mangler eller er tomt.",
    _REJECT,
)
SENDER_NOT_EBXML_FROM = _rule(
    "MSGHEAD-SENDER-NOT-EBXML-FROM",
    "X99",
    "MsgHead Sender HER-id differs from the ebXML From HER-id",
    "Avsenderens HER-id i meldingshodet er ikke den samme som avsender (From) i ebXML-konvolutten.",
    _REJECT,
)
RECEIVER_NOT_EBXML_TO = _rule(
    "MSGHEAD-RECEIVER-NOT-EBXML-TO",
    "E21",
    "MsgHead Receiver HER-id differs from the ebXML To HER-id",
    "Mottakerens HER-id i meldingshodet er ikke den samme som mottaker (To) i ebXML-konvolutten.",
    _REJECT,
)
SENDER_NOT_PARTY = _rule(
    "MSGHEAD-SENDER-NOT-PARTY",
    "X99",
    "MsgHead Sender HER-id is not the registered party that sent and signed the message",
    "Avsenderens HER-id i meldingshodet tilhører ikke kommunikasjonsparten som sendte og "
    "signerte meldingen.",
    _REJECT,
)
RECEIVER_UNKNOWN = _rule(
    "MSGHEAD-RECEIVER-UNKNOWN",
    "E21",
    "MsgHead Receiver HER-id is not one of this service's addresses",
    "Mottakerens HER-id i meldingshodet er ikke en adresse til KPR hos denne mottakstjenesten.",
    _REJECT,
)

RULES: tuple[Rule, ...] = (
    NOT_XML,
    NOT_MSGHEAD,
    SCHEMA_INVALID,
    MIGVERSION_WRONG,
    GENDATE_MISSING,
    GENDATE_INVALID,
    GENDATE_FUTURE,
    MSGID_MISSING,
    MSGID_DUPLICATE,
    TYPE_UNSUPPORTED,
    CONTENT_MISSING,
    SENDER_NOT_EBXML_FROM,
    RECEIVER_NOT_EBXML_TO,
    SENDER_NOT_PARTY,
    RECEIVER_UNKNOWN,
)
