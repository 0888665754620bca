"""Builders: business message, reply (Acknowledgment + AppRec), MessageError."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from app.core.findings import Finding
from app.ebxml import rules
from app.ebxml.build import (
    BuiltMessage,
    Cte,
    Payload,
    build_message_error,
    build_message_error_for,
    build_reply,
    her_party,
)
from app.ebxml.envelope import (
    DS_NS,
    EB_NS,
    EbmsHeader,
    ReplyContext,
    own_schema,
    parse_envelope,
)
from app.ebxml.mime import parse_body, parse_eml
from tests.unit.ebxml_support import (
    KPR_HER,
    NOW,
    SENDER_HER,
    FakeSigner,
    business_message,
    official_schema,
    sample,
)

NS = {"eb": EB_NS, "ds": DS_NS}
APPREC = Payload(b"<AppRec>...</AppRec>", "application/pkcs7-mime; smime-type=enveloped-data")


def _valid_both(reference_dir: Path, built: BuiltMessage) -> etree._Element:
    root = etree.fromstring(built.soap)
    official = official_schema(reference_dir)
    assert official.validate(root.getroottree()), official.error_log
    own = own_schema()
    assert own.validate(root.getroottree()), own.error_log
    return root


def _received(signed: bool = True) -> EbmsHeader:
    built = business_message(sign=FakeSigner() if signed else None)
    header = parse_envelope(built.soap).header
    assert header is not None
    return header


@pytest.mark.parametrize("signed", [False, True])
def test_business_message_validates_against_official_and_own_schema(
    reference_dir: Path, signed: bool
) -> None:
    root = _valid_both(reference_dir, business_message(sign=FakeSigner() if signed else None))
    assert root.find("*/eb:AckRequested", NS) is not None
    assert (root.find("*/ds:Signature", NS) is not None) is signed


def test_signer_gets_envelope_and_attachments_before_serialisation() -> None:
    signer = FakeSigner()
    built = business_message(sign=signer)
    mime = parse_body(built.body, built.content_type).message
    assert mime is not None
    assert len(signer.calls) == 1
    tag, attachments = signer.calls[0]
    assert tag.endswith("}Envelope")
    assert attachments == mime.attachment_map
    header = parse_envelope(mime.soap).header
    assert header is not None
    assert header.has_signature
    assert len(header.signature_references) == 2


def test_building_twice_gives_identical_bytes() -> None:
    a = business_message(sign=FakeSigner())
    b = business_message(sign=FakeSigner())
    assert (a.body, a.content_type) == (b.body, b.content_type)


def test_seven_bit_refuses_non_ascii_payload() -> None:
    with pytest.raises(ValueError, match="7bit"):
        business_message(payload_cte="7bit")


@pytest.mark.parametrize("soap_cte", ["binary", "8bit", "7bit", "base64", "quoted-printable"])
def test_reply_round_trips_in_every_cte(reference_dir: Path, soap_cte: Cte) -> None:
    received = _received()
    built = build_reply(
        received, message_id="reply-1", timestamp=NOW, apprec=APPREC, soap_cte=soap_cte
    )
    _valid_both(reference_dir, built)
    mime = parse_body(built.body, built.content_type).message
    assert mime is not None
    assert mime.soap == built.soap
    assert [a.data for a in mime.attachments] == [APPREC.data]


def test_reply_header_acknowledgment_and_manifest(reference_dir: Path) -> None:
    received = _received()
    built = build_reply(received, message_id="reply-1", timestamp=NOW, apprec=APPREC)
    root = _valid_both(reference_dir, built)
    mime = parse_body(built.body, built.content_type).message
    assert mime is not None
    h = parse_envelope(mime.soap).header
    assert h is not None
    assert h.from_party.her_ids == (KPR_HER,)
    assert h.to_party.her_ids == (SENDER_HER,)
    assert h.conversation_id == received.conversation_id
    assert h.service == received.service
    assert h.cpa_id == received.cpa_id
    assert h.action == "APPREC"
    assert h.ref_to_message_id == received.message_id
    assert h.duplicate_elimination is False
    assert root.find(".//eb:DuplicateElimination", NS) is None
    assert h.acknowledgment is not None
    assert h.acknowledgment.ref_to_message_id == received.message_id
    assert [r.href[4:] for r in h.manifest] == [a.content_id for a in mime.attachments]
    copies = root.findall("*/eb:Acknowledgment/ds:Reference", NS)
    assert [etree.tostring(c, method="c14n") for c in copies] == [
        etree.tostring(etree.fromstring(r), method="c14n") for r in received.signature_references
    ]


def test_reply_keeps_reference_copies_exact_for_nav_sample(reference_dir: Path) -> None:
    mime = parse_eml(sample(reference_dir, "nav-real-smtp-message.eml")).message
    assert mime is not None
    received = parse_envelope(mime.soap).header
    assert received is not None
    built = build_reply(received, message_id="r", timestamp=NOW, apprec=APPREC)
    _valid_both(reference_dir, built)
    # the XPath text uses the SOAP-ENV prefix: its declaration must survive the copy
    assert (
        built.soap.count(b'<ds:XPath xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">')
        == 1
    )
    root = etree.fromstring(built.soap)
    copies = root.findall("*/eb:Acknowledgment/ds:Reference", NS)
    assert [etree.tostring(c, method="c14n") for c in copies] == [
        etree.tostring(etree.fromstring(r), method="c14n") for r in received.signature_references
    ]


def test_reply_without_ack_requested_has_no_acknowledgment(reference_dir: Path) -> None:
    received = _received(signed=False)
    built = build_reply(
        replace(received, ack_requested=None), message_id="r", timestamp=NOW, apprec=APPREC
    )
    root = _valid_both(reference_dir, built)
    assert root.find("*/eb:Acknowledgment", NS) is None


def test_signed_reply_validates(reference_dir: Path) -> None:
    built = build_reply(
        _received(), message_id="r", timestamp=NOW, apprec=APPREC, sign=FakeSigner()
    )
    root = _valid_both(reference_dir, built)
    assert root.find("*/ds:Signature", NS) is not None


def _findings() -> list[Finding]:
    return [
        Finding(
            rules.TO_UNKNOWN, "/SOAP:Envelope/SOAP:Header/eb:MessageHeader/eb:To", "Feil HER-id 1."
        ),
        Finding(rules.MIME_START_MISSING, "", "Startdelen mangler."),
    ]


@pytest.mark.parametrize("multipart", [True, False])
def test_message_error_from_findings(reference_dir: Path, multipart: bool) -> None:
    received = _received()
    built = build_message_error(
        _findings(),
        from_party=her_party(KPR_HER),
        to_party=received.from_party,
        cpa_id=received.cpa_id,
        conversation_id=received.conversation_id,
        ref_to_message_id=received.message_id,
        message_id="err-1",
        timestamp=NOW,
        multipart=multipart,
    )
    root = _valid_both(reference_dir, built)
    assert built.content_type.startswith("multipart/related" if multipart else "text/xml")
    mime = parse_body(built.body, built.content_type).message
    assert mime is not None
    h = parse_envelope(mime.soap).header
    assert h is not None
    assert (h.service.value, h.action) == ("urn:oasis:names:tc:ebxml-msg:service", "MessageError")
    assert h.ref_to_message_id == received.message_id
    assert h.highest_severity == "Error"
    assert [(e.error_code, e.severity) for e in h.errors] == [
        ("ValueNotRecognized", "Error"),
        ("MimeProblem", "Error"),
    ]
    assert h.errors[0].location == "/SOAP:Envelope/SOAP:Header/eb:MessageHeader/eb:To"
    assert h.errors[1].location is None
    assert h.errors[0].description is not None
    assert "EBMS-TO-UNKNOWN" in h.errors[0].description
    assert "Feil HER-id 1." in h.errors[0].description
    langs = root.xpath("//eb:Error/eb:Description/@xml:lang", namespaces=NS)
    assert langs == ["no", "no"]


def test_message_error_for_unreadable_message_uses_unknown(reference_dir: Path) -> None:
    built = build_message_error_for(
        ReplyContext(), _findings(), our_party=her_party(KPR_HER), message_id="e", timestamp=NOW
    )
    _valid_both(reference_dir, built)
    h = parse_envelope(built.soap).header
    assert h is not None
    assert h.to_party.party_ids[0].value == "unknown"
    assert h.cpa_id == "unknown"
    assert h.ref_to_message_id is None


def test_message_error_needs_findings() -> None:
    with pytest.raises(ValueError, match="finding"):
        build_message_error_for(
            ReplyContext(), [], our_party=her_party(KPR_HER), message_id="e", timestamp=NOW
        )


def test_header_injection_through_payload_content_type_is_refused() -> None:
    with pytest.raises(ValueError, match="line breaks"):
        build_reply(
            _received(),
            message_id="r",
            timestamp=NOW,
            apprec=Payload(b"x", "text/xml\r\nX-Evil: 1"),
        )
