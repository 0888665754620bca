"""SOAP envelope and ebMS header parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from app.ebxml import rules
from app.ebxml.envelope import (
    ACTOR_TO_PARTY_MSH,
    EB_NS,
    PartyId,
    parse_datetime,
    parse_envelope,
)
from app.ebxml.mime import parse_eml
from tests.budgets import examples
from tests.unit.ebxml_support import business_message, sample


def _ids(soap: bytes) -> list[str]:
    return [f.rule.id for f in parse_envelope(soap).findings]


def test_nav_message_header_fields(reference_dir: Path) -> None:
    mime = parse_eml(sample(reference_dir, "nav-real-smtp-message.eml")).message
    assert mime is not None
    result = parse_envelope(mime.soap)
    assert result.findings == ()
    h = result.header
    assert h is not None
    assert h.version == "2.0"
    assert h.from_party.party_ids == (PartyId("8141253", "HER"),)
    assert h.from_party.role == "Behandler"
    assert h.to_party.party_ids == (PartyId("79768", "HER"),)
    assert h.to_party.role == "KontrollUtbetaler"
    assert h.to_party.her_ids == ("79768",)
    assert h.cpa_id == "nav:qass:35065"
    assert h.conversation_id == "be192d3a-34b5-448a-a374-5eab0524c74d"
    assert (h.service.value, h.service.type) == ("BehandlerKrav", "string")
    assert h.action == "OppgjorsMelding"
    assert h.message_id == "7104acf8-21e9-4ee7-b894-d413a00a8881"
    assert h.timestamp == datetime(2023, 8, 29, 10, 56, 50, 306947, tzinfo=UTC)
    assert h.ref_to_message_id is None
    assert h.time_to_live is None
    assert h.duplicate_elimination is False
    assert h.ack_requested is not None
    assert h.ack_requested.signed is True
    assert h.ack_requested.actor == ACTOR_TO_PARTY_MSH
    assert [r.href for r in h.manifest] == ["cid:3CTGI8UKUKU4.ADHEUDMDCY3Q3@speare.no"]
    assert h.has_signature is True
    assert len(h.signature_references) == 2
    assert b'URI="cid:3CTGI8UKUKU4.ADHEUDMDCY3Q3@speare.no"' in h.signature_references[1]
    assert not h.is_signal


def test_payloadmessage_sample(reference_dir: Path) -> None:
    result = parse_envelope(sample(reference_dir, "payloadmessage.xml"))
    assert result.findings == ()
    h = result.header
    assert h is not None
    assert h.from_party.her_ids == ("123",)
    assert h.to_party.her_ids == ("321",)
    assert [(d.lang, d.text[:14]) for d in h.descriptions] == [("NO", '{"MSH-system":')]
    assert [r.href for r in h.manifest] == ["cid:ref1"]
    assert h.has_signature


def test_acknowledgment_sample_with_must_understand_true(reference_dir: Path) -> None:
    result = parse_envelope(sample(reference_dir, "acknowledgment.xml"))
    assert result.findings == ()  # SOAP:mustUnderstand="true" is tolerated
    h = result.header
    assert h is not None
    assert h.is_signal
    assert h.action == "Acknowledgment"
    assert h.to_party.party_ids == (PartyId("79768", "HER"), PartyId("889640782", "ENH"))
    assert h.acknowledgment is not None
    assert h.acknowledgment.ref_to_message_id == "20250124-114229-35564@qa.ebxml.nav.no"
    assert h.acknowledgment.timestamp == datetime(2025, 1, 24, 10, 42, 29, tzinfo=UTC)
    assert h.ref_to_message_id == "20250124-114229-35564@qa.ebxml.nav.no"
    assert h.manifest == ()


def test_messageerror_sample(reference_dir: Path) -> None:
    result = parse_envelope(sample(reference_dir, "messageerror.xml"))
    assert result.findings == ()
    h = result.header
    assert h is not None
    assert h.action == "MessageError"
    assert h.highest_severity == "Error"
    assert len(h.errors) == 1
    err = h.errors[0]
    assert (err.error_code, err.severity) == ("ValueNotRecognized", "Error")
    assert err.location == "xpointer(//MessageHeader/CpaId)"
    assert err.description is not None
    assert "invalid CpaId" in err.description


def test_built_message_round_trips_its_header() -> None:
    ttl = datetime(2018, 11, 21, tzinfo=UTC)
    built = business_message(time_to_live=ttl)
    h = parse_envelope(built.soap).header
    assert h is not None
    assert h.message_id == built.message_id
    assert h.time_to_live == ttl
    assert h.duplicate_elimination is True
    assert h.ack_requested is not None
    assert h.has_signature is False


def test_not_well_formed() -> None:
    assert _ids(b"<SOAP:Envelope") == ["EBMS-SOAP-NOT-XML"]


def test_doctype_is_refused() -> None:
    soap = b'<!DOCTYPE e [<!ENTITY x "y">]><e>&x;</e>'
    assert _ids(soap) == ["EBMS-SOAP-NOT-XML"]


def test_soap12_envelope_is_not_accepted() -> None:
    soap = b'<E:Envelope xmlns:E="http://www.w3.org/2003/05/soap-envelope"><E:Body/></E:Envelope>'
    assert _ids(soap) == ["EBMS-SOAP-NOT-ENVELOPE"]


def test_missing_message_header() -> None:
    soap = b'<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body/></S:Envelope>'
    result = parse_envelope(soap)
    assert [f.rule for f in result.findings] == [rules.HEADER_MISSING]
    assert result.header is None


def _without(soap: bytes, xpath: str) -> bytes:
    root = etree.fromstring(soap)
    found = root.xpath(xpath, namespaces={"eb": EB_NS})
    assert isinstance(found, list)
    for el in found:
        assert isinstance(el, etree._Element)
        parent = el.getparent()
        assert parent is not None
        parent.remove(el)
    return etree.tostring(root)


@pytest.mark.parametrize(
    "xpath",
    [
        "//eb:From/eb:PartyId",
        "//eb:To/eb:PartyId",
        "//eb:CPAId",
        "//eb:ConversationId",
        "//eb:MessageHeader/eb:Service",
        "//eb:MessageHeader/eb:Action",
        "//eb:MessageData/eb:MessageId",
        "//eb:MessageData/eb:Timestamp",
    ],
)
def test_each_missing_mandatory_element(xpath: str) -> None:
    soap = _without(business_message().soap, xpath)
    result = parse_envelope(soap)
    assert [f.rule.id for f in result.findings] == ["EBMS-HEADER-ELEMENT-MISSING"]
    assert xpath.split("/")[-1] in result.findings[0].location
    assert result.header is None
    # what could be read is kept for addressing the MessageError
    assert result.reply_context.conversation_id == "conv-1" or "Conversation" in xpath


def test_unsupported_version() -> None:
    soap = business_message().soap.replace(b'eb:version="2.0"', b'eb:version="3.0"', 1)
    assert _ids(soap) == ["EBMS-VERSION-UNSUPPORTED"]


def test_schema_violation_is_reported_with_line() -> None:
    soap = business_message().soap.replace(b"2018-11-20T12:00:00.000Z", b"i dag", 1)
    result = parse_envelope(soap)
    assert [f.rule.id for f in result.findings] == ["EBMS-SCHEMA-INVALID"]
    assert "eb:Timestamp" in result.findings[0].detail
    assert result.header is not None  # still addressable
    assert result.header.timestamp is None


def test_parse_datetime_forms() -> None:
    assert parse_datetime("2014-06-07T19:42:20") == datetime(2014, 6, 7, 19, 42, 20, tzinfo=UTC)
    assert parse_datetime("2014-06-07") is None
    assert parse_datetime("not a date") is None


@settings(max_examples=examples(300))
@given(st.binary(max_size=1500))
def test_random_bytes_never_raise(data: bytes) -> None:
    result = parse_envelope(data)
    assert result.header is not None or result.findings


@settings(max_examples=examples(200))
@given(st.integers(min_value=0, max_value=2000), st.integers(0, 30), st.binary(max_size=8))
def test_mutated_envelope_never_raises(pos: int, cut: int, insert: bytes) -> None:
    soap = business_message().soap
    mutated = soap[:pos] + insert + soap[pos + cut :]
    result = parse_envelope(mutated)
    for f in result.findings:
        assert f.rule in rules.RULES
