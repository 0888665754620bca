"""MsgHead v1.2 reading: real samples, structure findings, our schema against the official one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from app.apprec.model import ERROR_CODES
from app.core.findings import Consequence, Layer
from app.core.schemas import SCHEMAS_DIR
from app.msghead import MSGHEAD_NS, RULES, read_msghead
from app.msghead import rules as r
from app.msghead.xmlutil import OSLO, parse_xs_datetime
from tests.budgets import examples

CONTENT_NS = "urn:test:kpr-content"


HER_TYPE = 'V="HER" S="2.16.578.1.12.4.1.1.9051" DN="HER-id"'


def msghead_xml(
    *,
    msg_type: str = "KPR_IPL",
    mig: str | None = "v1.2 2006-05-24",
    gen_date: str | None = "2018-11-20T12:00:00",
    msg_id: str | None = "8b8148f6-b38a-488c-a65e-d389b74d0fb1",
    sender_her: str = "8000001",
    receiver_her: str = "131725",
    content: str | None = f'<Melding xmlns="{CONTENT_NS}" versjon="56.0.0"/>',
    extra_info: str = "",
    signature: bool = False,
) -> bytes:
    """A KPR_IPL-like MsgHead (made-up values) with one element or another left out."""

    def opt(tag: str, value: str | None) -> str:
        return "" if value is None else f"<{tag}>{value}</{tag}>"

    refdoc_tail = (
        "<FileReference>http://example.invalid/x</FileReference>"
        if content is None
        else f"<Content>{content}</Content>"
    )
    sig = (
        '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/>'
        "</ds:Signature>"
        if signature
        else ""
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<MsgHead xmlns="{MSGHEAD_NS}">
  <MsgInfo>
    <Type V="{msg_type}" DN="IPLOS-melding til KPR"/>
    {opt("MIGversion", mig)}
    {opt("GenDate", gen_date)}
    {opt("MsgId", msg_id)}
    <Ack V="J" DN="Ja"/>
    <ConversationRef><RefToParent>p1</RefToParent><RefToConversation>c1</RefToConversation>
    </ConversationRef>
    {extra_info}
    <Sender><Organisation><OrganisationName>Eksempel kommune</OrganisationName>
      <Ident><Id>{sender_her}</Id><TypeId {HER_TYPE}/></Ident>
      <Ident><Id>974760673</Id><TypeId V="ENH" S="2.16.578.1.12.4.1.1.9051" DN="Orgnr"/></Ident>
    </Organisation></Sender>
    <Receiver><Organisation><OrganisationName>Helsedirektoratet KPR</OrganisationName>
      <Ident><Id>{receiver_her}</Id><TypeId {HER_TYPE}/></Ident>
    </Organisation></Receiver>
  </MsgInfo>
  <Document><RefDoc><MsgType V="XML" DN="XML-instans"/><MimeType>text/xml</MimeType>
    {refdoc_tail}
  </RefDoc></Document>
  {sig}
</MsgHead>""".encode()


def rule_ids(data: bytes) -> list[str]:
    return [f.rule.id for f in read_msghead(data).findings]


# --- real samples -------------------------------------------------------------------------


def test_helsenorge_sample_is_read_with_its_fields(reference_dir: Path) -> None:
    data = (reference_dir / "samples/msghead/helsenorge-message.xml").read_bytes()
    reading = read_msghead(data)
    assert reading.findings == ()
    head = reading.msghead
    assert head is not None
    assert head.type_v == "DIALOG_INNBYGGER_EKONTAKT"
    assert head.mig_version == "v1.2 2006-05-24"
    assert head.gen_date_raw == "2012-11-21T09:30:47.0Z"
    assert head.gen_date == datetime(2012, 11, 21, 9, 30, 47, tzinfo=UTC)
    assert head.msg_id == "8325fcba-89a9-11e3-baa8-0800200c9a66"
    assert head.ack == "J"
    assert head.sender is not None
    assert head.sender.name == "Helsedirektoratet"
    assert head.sender.org_number == "983544622"
    # The HER-id sits on the nested organisation (the communication party).
    assert head.sender_her_id == "109989"
    assert head.sender.communication_party_name == "Helsenorge.no"
    assert head.receiver is not None
    assert ("971318864", "ENH") in [(i.id, i.type) for i in head.receiver.idents]
    assert head.receiver_her_id == "109989"
    assert head.content is not None
    assert etree.QName(head.content).localname == "Dialogmelding"
    assert not head.has_signature


def test_nav_sample_is_read_with_its_enveloped_signature(reference_dir: Path) -> None:
    data = (reference_dir / "samples/msghead/nav-pom-decrypted.xml").read_bytes()
    reading = read_msghead(data)
    assert reading.findings == ()
    head = reading.msghead
    assert head is not None
    assert head.type_v == "POM"
    assert head.msg_type is not None
    assert head.msg_type.dn == "Poliklinisk oppgjørsmelding"
    # No zone in the text: Norwegian local time (summer, +02:00).
    assert head.gen_date_raw == "2023-08-29T10:56:50"
    assert head.gen_date == datetime(2023, 8, 29, 10, 56, 50, tzinfo=OSLO)
    assert head.gen_date.utcoffset() == timedelta(hours=2)
    assert head.msg_id == "e10c4758-c559-4b54-8427-fb97e89c99bb"
    assert head.sender_her_id == "8141253"
    assert head.sender is not None
    assert head.sender.org_number == "993954896"
    assert head.receiver_her_id == "79768"
    assert head.has_signature
    assert head.signature is not None
    assert head.signature.getparent() is head.root
    assert head.root[-1] is head.signature
    assert head.content is not None
    assert etree.QName(head.content).localname == "BehandlerKrav"


def test_official_msghead_samples_validate_against_our_schema(reference_dir: Path) -> None:
    ours = etree.XMLSchema(etree.parse(str(SCHEMAS_DIR / "msghead/msghead-v1.2.xsd")))
    for name in ("helsenorge-message.xml", "nav-pom-decrypted.xml"):
        doc = etree.parse(str(reference_dir / "samples/msghead" / name))
        assert ours.validate(doc), (name, ours.error_log)


def _official_with_test_content(reference_dir: Path, tmp_path: Path) -> etree.XMLSchema:
    """The official MsgHead XSD (strict Content) plus a stand-in schema for our test content."""
    content_xsd = tmp_path / "content.xsd"
    content_xsd.write_text(
        f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="{CONTENT_NS}"
        elementFormDefault="qualified"><xs:element name="Melding"><xs:complexType>
        <xs:anyAttribute processContents="skip"/></xs:complexType></xs:element></xs:schema>"""
    )
    official = (reference_dir / "xsd/kith/MsgHead-v1_2.xsd").resolve().as_uri()
    wrapper = tmp_path / "wrapper.xsd"
    wrapper.write_text(
        f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:test:w">
        <xs:import namespace="{MSGHEAD_NS}" schemaLocation="{official}"/>
        <xs:import namespace="{CONTENT_NS}" schemaLocation="{content_xsd.as_uri()}"/>
        </xs:schema>"""
    )
    return etree.XMLSchema(etree.parse(str(wrapper)))


@pytest.mark.parametrize(
    ("kwargs", "valid"),
    [
        ({}, True),
        ({"signature": True}, False),  # an empty SignedInfo is not a real signature
        ({"mig": "v1.1 2005-11-22"}, False),
        ({"gen_date": "20.11.2018"}, False),
        ({"msg_id": None}, False),
        ({"extra_info": "<Foo/>"}, False),
    ],
)
def test_our_schema_agrees_with_the_official_one(
    reference_dir: Path, tmp_path: Path, kwargs: dict[str, object], valid: bool
) -> None:
    official = _official_with_test_content(reference_dir, tmp_path)
    data = msghead_xml(**kwargs)  # type: ignore[arg-type]
    doc = etree.fromstring(data)
    assert official.validate(doc) is valid
    findings = read_msghead(data).findings
    if kwargs.get("signature"):
        # Our schema leaves the signature's inside to the security layer, on purpose.
        assert findings == ()
    else:
        assert (findings == ()) is valid


# --- structure findings -------------------------------------------------------------------


def test_a_good_kpr_message_has_no_findings_and_keeps_the_content_element() -> None:
    reading = read_msghead(msghead_xml())
    assert reading.findings == ()
    head = reading.msghead
    assert head is not None
    assert head.type_v == "KPR_IPL"
    assert head.content is not None
    assert head.content.tag == f"{{{CONTENT_NS}}}Melding"
    assert head.conversation_ref is not None
    assert head.conversation_ref.ref_to_conversation == "c1"
    assert head.document_count == 1
    assert head.gen_date == datetime(2018, 11, 20, 12, 0, tzinfo=OSLO)
    assert head.gen_date.utcoffset() == timedelta(hours=1)


def test_bytes_that_are_not_xml_give_t01() -> None:
    reading = read_msghead(b"<MsgHead><unclosed></MsgHead>")
    assert reading.msghead is None
    assert [f.rule for f in reading.findings] == [r.NOT_XML]
    assert reading.findings[0].rule.apprec_code == "T01"


def test_a_doctype_is_refused_as_not_xml() -> None:
    data = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'
    assert rule_ids(data) == ["MSGHEAD-NOT-XML"]


def test_another_root_element_is_not_a_msghead() -> None:
    reading = read_msghead(b'<AppRec xmlns="http://www.kith.no/xmlstds/apprec/2012-02-15"/>')
    assert reading.msghead is None
    assert [f.rule for f in reading.findings] == [r.NOT_MSGHEAD]
    assert "AppRec" in reading.findings[0].detail


def test_wrong_migversion_gets_its_own_rule_and_no_duplicate_schema_finding() -> None:
    findings = read_msghead(msghead_xml(mig="v1.1 2005-11-22")).findings
    assert [f.rule for f in findings] == [r.MIGVERSION_WRONG]
    assert "v1.1 2005-11-22" in findings[0].detail
    assert findings[0].location == "/MsgHead/MsgInfo/MIGversion"


def test_unparseable_gendate_is_reported_once() -> None:
    findings = read_msghead(msghead_xml(gen_date="20.11.2018 12:00")).findings
    assert [f.rule for f in findings] == [r.GENDATE_INVALID]
    assert "20.11.2018 12:00" in findings[0].detail


def test_missing_gendate_is_reported_and_the_head_is_still_read() -> None:
    reading = read_msghead(msghead_xml(gen_date=None))
    ids = [f.rule.id for f in reading.findings]
    assert "MSGHEAD-GENDATE-MISSING" in ids
    assert reading.msghead is not None
    assert reading.msghead.gen_date is None
    assert reading.msghead.msg_id == "8b8148f6-b38a-488c-a65e-d389b74d0fb1"


def test_missing_msgid_is_e10() -> None:
    reading = read_msghead(msghead_xml(msg_id=None))
    e10 = [f for f in reading.findings if f.rule is r.MSGID_MISSING]
    assert len(e10) == 1
    assert e10[0].rule.apprec_code == "E10"
    assert reading.msghead is not None
    assert reading.msghead.msg_id is None


def test_empty_msgid_is_e10_without_a_schema_finding() -> None:
    findings = read_msghead(msghead_xml(msg_id="  ")).findings
    assert [f.rule for f in findings] == [r.MSGID_MISSING]


def test_schema_errors_name_a_readable_path() -> None:
    findings = read_msghead(msghead_xml(extra_info="<Foo/>")).findings
    assert [f.rule for f in findings] == [r.SCHEMA_INVALID]
    assert findings[0].location == "/MsgHead/MsgInfo/Foo"
    assert "/MsgHead/MsgInfo/Foo" in findings[0].detail
    assert "{" not in findings[0].detail  # no Clark-notation namespaces


def test_file_reference_instead_of_content_is_missing_content() -> None:
    reading = read_msghead(msghead_xml(content=None))
    assert [f.rule for f in reading.findings] == [r.CONTENT_MISSING]
    assert reading.msghead is not None
    assert reading.msghead.content is None


def test_content_is_validated_laxly_in_the_envelope() -> None:
    content = f'<Melding xmlns="{CONTENT_NS}"><AnythingGoes a="1"><Deep/></AnythingGoes></Melding>'
    assert read_msghead(msghead_xml(content=content)).findings == ()


def test_enveloped_signature_is_found() -> None:
    head = read_msghead(msghead_xml(signature=True)).msghead
    assert head is not None
    assert head.has_signature
    assert head.signature is not None
    assert etree.QName(head.signature).localname == "Signature"


def test_many_schema_errors_are_capped() -> None:
    extra = "".join(f"<Foo{i}/>" for i in range(3))
    other = "<OtherReceiver/>" * 30  # each lacks RoleReceiver
    findings = read_msghead(msghead_xml(extra_info=extra + other)).findings
    assert 1 <= len(findings) <= 11
    assert all(f.rule is r.SCHEMA_INVALID for f in findings)


def test_deep_content_needs_the_huge_flag() -> None:
    depth = 1000  # libxml2: 256 levels without XML_PARSE_HUGE, 2048 with
    content = f'<Melding xmlns="{CONTENT_NS}">' + "<a>" * depth + "</a>" * depth + "</Melding>"
    data = msghead_xml(content=content)
    assert rule_ids(data) == ["MSGHEAD-NOT-XML"]
    reading = read_msghead(data, huge=True)
    assert reading.msghead is not None
    assert reading.findings == ()


# --- dates and properties -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-11-20T12:00:00", datetime(2018, 11, 20, 12, tzinfo=OSLO)),
        ("2018-11-20T12:00:00Z", datetime(2018, 11, 20, 12, tzinfo=UTC)),
        (
            "2018-11-20T12:00:00.1234567+05:30",
            datetime(2018, 11, 20, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=5.5))),
        ),
        ("2018-11-20", None),
        ("2018-02-30T12:00:00", None),
        ("2018-11-20 12:00:00", None),
        ("2018-11-20T12:00:00+15:00", None),
        ("", None),
    ],
)
def test_xs_datetime_parsing(text: str, expected: datetime | None) -> None:
    assert parse_xs_datetime(text) == expected


@given(st.binary(max_size=300))
@settings(max_examples=examples(200))
def test_reading_arbitrary_bytes_never_raises(data: bytes) -> None:
    reading = read_msghead(data)
    assert reading.msghead is not None or len(reading.findings) == 1


_ID_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40
).filter(lambda s: s.strip() == s and s != "")


@given(msg_id=_ID_TEXT, her=st.integers(min_value=1, max_value=10**9))
@settings(max_examples=examples(50), deadline=None)
def test_msgid_and_her_ids_round_trip(msg_id: str, her: int) -> None:
    from xml.sax.saxutils import escape

    head = read_msghead(msghead_xml(msg_id=escape(msg_id), sender_her=str(her))).msghead
    assert head is not None
    assert head.msg_id == msg_id
    assert head.sender_her_id == str(her)


def test_rule_catalogue_is_consistent() -> None:
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))
    for rule in RULES:
        assert rule.id.startswith("MSGHEAD-")
        assert rule.layer is Layer.MSGHEAD
        # a warning never reaches the AppRec's Error list: no code
        assert rule.apprec_code in ERROR_CODES or rule.consequence is Consequence.WARN
        assert rule.text_no
    assert r.MSGID_DUPLICATE in RULES
    assert r.MSGID_DUPLICATE.apprec_code == "E10"
    assert r.RECEIVER_UNKNOWN.apprec_code == "E21"
    assert r.TYPE_UNSUPPORTED.apprec_code == "T10"
