"""XML-DSig of the ebXML envelope and of MsgHead."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import email
from email import policy
from email.message import Message
from pathlib import Path

import pytest
import xmlsec
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from app.core.xmlparse import parse_xml
from app.dev.devpki import DevPki, dev_pki
from app.security import rules
from app.security.xmldsig import (
    DS_NS,
    SOAP_NS,
    cid_uri,
    normalize_cid,
    sign_envelope,
    sign_msghead,
    verify_envelope,
    verify_msghead,
)
from tests.budgets import examples

NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
EB_NS = "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd"
CID = "payload-1@kommune.example"
PAYLOAD = b"\x30\x82\x00\x10 pretend this is CMS \x00\x01\x02" * 10
DS = f"{{{DS_NS}}}"

ENVELOPE = f"""<SOAP:Envelope xmlns:SOAP="{SOAP_NS}" xmlns:eb="{EB_NS}"
 xmlns:xlink="http://www.w3.org/1999/xlink"><SOAP:Header>
<eb:MessageHeader SOAP:mustUnderstand="1" eb:version="2.0">
<eb:From><eb:PartyId eb:type="HER">8000001</eb:PartyId></eb:From>
<eb:To><eb:PartyId eb:type="HER">131725</eb:PartyId></eb:To>
<eb:CPAId>cpa-1</eb:CPAId><eb:ConversationId>c-1</eb:ConversationId>
<eb:Service>KPR</eb:Service><eb:Action>KPR_IPL</eb:Action>
<eb:MessageData><eb:MessageId>m-1</eb:MessageId>
<eb:Timestamp>2024-03-01T11:00:00Z</eb:Timestamp></eb:MessageData>
</eb:MessageHeader>
<eb:AckRequested SOAP:actor="urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH"
 SOAP:mustUnderstand="1" eb:signed="true" eb:version="2.0"/>
</SOAP:Header><SOAP:Body><eb:Manifest eb:version="2.0">
<eb:Reference xlink:href="cid:{CID}" xlink:type="simple"/></eb:Manifest></SOAP:Body>
</SOAP:Envelope>"""


def build_envelope() -> etree._Element:
    return parse_xml(ENVELOPE.encode())


def signed_bytes(pki: DevPki, attachments: dict[str, bytes] | None = None) -> bytes:
    parts = {CID: PAYLOAD} if attachments is None else attachments
    signed = sign_envelope(build_envelope(), parts, pki.municipality.signing)
    return etree.tostring(signed)


def rule_ids(result: object) -> list[str]:
    return [f.rule.id for f in result.findings]  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def pki() -> DevPki:
    return dev_pki(NOW)


# --- the real NAV message -------------------------------------------------------------------


def nav_parts(reference_dir: Path) -> tuple[bytes, str, bytes]:
    raw = (reference_dir / "samples/ebxml/nav-real-smtp-message.eml").read_bytes()
    msg = email.message_from_bytes(raw, policy=policy.compat32)
    leaves: list[Message] = [p for p in msg.walk() if not p.is_multipart()]
    soap = leaves[0].get_payload(decode=True)
    attachment = leaves[1].get_payload(decode=True)
    assert isinstance(soap, bytes)
    assert isinstance(attachment, bytes)
    return soap, str(leaves[1]["Content-Id"]), attachment


def test_real_nav_envelope_signature_verifies(reference_dir: Path) -> None:
    soap, cid, attachment = nav_parts(reference_dir)
    result = verify_envelope(soap, {cid: attachment})
    assert result.valid, result.findings
    assert result.signer is not None
    assert "NTRNO-993954896" in result.signer.subject.rfc4514_string()
    assert result.signed_cids == ("3CTGI8UKUKU4.ADHEUDMDCY3Q3@speare.no",)
    assert [r.get("URI") for r in result.references] == [
        "",
        "cid:3CTGI8UKUKU4.ADHEUDMDCY3Q3@speare.no",
    ]


def test_real_nav_envelope_fails_when_one_attachment_byte_changes(reference_dir: Path) -> None:
    soap, cid, attachment = nav_parts(reference_dir)
    tampered = bytearray(attachment)
    tampered[len(tampered) // 2] ^= 0x01
    result = verify_envelope(soap, {cid: bytes(tampered)})
    assert rule_ids(result) == ["SEC-SIG-INVALID"]
    assert result.signer is not None
    assert "SPEARE AS" in result.findings[0].detail


def test_real_nav_envelope_fails_when_header_changes(reference_dir: Path) -> None:
    soap, cid, attachment = nav_parts(reference_dir)
    changed = soap.replace(b"<eb:CPAId>nav:qass:35065<", b"<eb:CPAId>nav:qass:35066<")
    assert changed != soap
    assert rule_ids(verify_envelope(changed, {cid: attachment})) == ["SEC-SIG-INVALID"]


def test_real_nav_msghead_business_signature_verifies(reference_dir: Path) -> None:
    data = (reference_dir / "samples/msghead/nav-pom-decrypted.xml").read_bytes()
    result = verify_msghead(data)
    assert result.valid, result.findings
    assert result.signer is not None


# --- round trips and failures ---------------------------------------------------------------


def test_signed_envelope_round_trip_verifies(pki: DevPki) -> None:
    result = verify_envelope(signed_bytes(pki), {f"<{CID}>": PAYLOAD})
    assert result.valid, result.findings
    assert result.signer == pki.municipality.signing.certificate
    assert result.signed_cids == (CID,)
    assert len(result.references) == 2


def test_signature_sits_in_soap_header_with_the_ebms_profile(pki: DevPki) -> None:
    root = parse_xml(signed_bytes(pki))
    sig = root.find(f"{{{SOAP_NS}}}Header/{DS}Signature")
    assert sig is not None
    transforms = [
        t.get("Algorithm") for t in sig.findall(f"{DS}SignedInfo/{DS}Reference/{DS}Transforms/*")
    ]
    assert transforms == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/TR/1999/REC-xpath-19991116",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    ]


def test_tampered_payload_fails(pki: DevPki) -> None:
    result = verify_envelope(signed_bytes(pki), {CID: PAYLOAD + b"x"})
    assert rule_ids(result) == ["SEC-SIG-INVALID"]


def test_tampered_header_fails(pki: DevPki) -> None:
    data = signed_bytes(pki).replace(b"<eb:MessageId>m-1<", b"<eb:MessageId>m-2<")
    assert rule_ids(verify_envelope(data, {CID: PAYLOAD})) == ["SEC-SIG-INVALID"]


def test_tampered_body_fails(pki: DevPki) -> None:
    data = signed_bytes(pki).replace(
        b'eb:version="2.0">\n<eb:Reference', b'eb:version="2.0"> <eb:Reference'
    )
    assert rule_ids(verify_envelope(data, {CID: PAYLOAD})) == ["SEC-SIG-INVALID"]


def test_wrong_key_fails(pki: DevPki) -> None:
    """A signature made with one key but carrying another party's certificate."""
    root = parse_xml(signed_bytes(pki))
    cert_el = root.find(f".//{DS}X509Certificate")
    assert cert_el is not None
    other = pki.kpr.signing.certificate
    cert_el.text = base64.b64encode(other.public_bytes(serialization.Encoding.DER)).decode()
    result = verify_envelope(etree.tostring(root), {CID: PAYLOAD})
    assert rule_ids(result) == ["SEC-SIG-INVALID"]
    assert result.signer == other


@pytest.mark.parametrize(
    "actor",
    ["urn:oasis:names:tc:ebxml-msg:actor:nextMSH", "http://schemas.xmlsoap.org/soap/actor/next"],
)
def test_xpath_transform_lets_next_msh_elements_change_after_signing(
    pki: DevPki, actor: str
) -> None:
    root = parse_xml(signed_bytes(pki))
    header = root.find(f"{{{SOAP_NS}}}Header")
    assert header is not None
    sync = etree.SubElement(header, f"{{{EB_NS}}}SyncReply")
    sync.set(f"{{{SOAP_NS}}}actor", actor)
    sync.set(f"{{{SOAP_NS}}}mustUnderstand", "1")
    sync.set(f"{{{EB_NS}}}version", "2.0")
    header.insert(1, copy.deepcopy(sync))  # also before the signature
    result = verify_envelope(etree.tostring(root), {CID: PAYLOAD})
    assert result.valid, result.findings


def test_xpath_transform_covers_elements_without_next_msh_actor(pki: DevPki) -> None:
    root = parse_xml(signed_bytes(pki))
    header = root.find(f"{{{SOAP_NS}}}Header")
    assert header is not None
    sync = etree.SubElement(header, f"{{{EB_NS}}}SyncReply")
    sync.set(f"{{{SOAP_NS}}}actor", "urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH")
    assert rule_ids(verify_envelope(etree.tostring(root), {CID: PAYLOAD})) == ["SEC-SIG-INVALID"]


def test_next_msh_element_present_at_signing_may_be_changed(pki: DevPki) -> None:
    env = build_envelope()
    header = env.find(f"{{{SOAP_NS}}}Header")
    assert header is not None
    ack = etree.SubElement(header, f"{{{EB_NS}}}AckRequested")
    ack.set(f"{{{SOAP_NS}}}actor", "urn:oasis:names:tc:ebxml-msg:actor:nextMSH")
    ack.set(f"{{{EB_NS}}}signed", "false")
    signed = sign_envelope(env, {CID: PAYLOAD}, pki.municipality.signing)
    data = etree.tostring(signed).replace(b'eb:signed="false"', b'eb:signed="true"')
    assert verify_envelope(data, {CID: PAYLOAD}).valid
    # while the toPartyMSH AckRequested is covered
    data2 = etree.tostring(signed).replace(b'eb:signed="true"', b'eb:signed="false"', 1)
    assert rule_ids(verify_envelope(data2, {CID: PAYLOAD})) == ["SEC-SIG-INVALID"]


def test_missing_signature_is_a_finding() -> None:
    result = verify_envelope(ENVELOPE.encode(), {CID: PAYLOAD})
    assert rule_ids(result) == ["SEC-SIG-MISSING"]
    assert result.findings[0].rule.ebms_error_code == "SecurityFailure"


def test_unsigned_attachment_is_a_finding(pki: DevPki) -> None:
    result = verify_envelope(signed_bytes(pki), {CID: PAYLOAD, "extra@x": b"sneaked in"})
    assert rule_ids(result) == ["SEC-SIG-PAYLOAD-UNSIGNED"]
    assert "extra@x" in result.findings[0].detail


def test_reference_to_absent_part_is_a_finding(pki: DevPki) -> None:
    assert rule_ids(verify_envelope(signed_bytes(pki), {})) == ["SEC-SIG-REFERENCE"]


@pytest.mark.parametrize(
    "algorithm",
    [
        "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
        "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
        "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
    ],
)
def test_weak_signature_method_is_a_finding(pki: DevPki, algorithm: str) -> None:
    data = signed_bytes(pki).replace(
        b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", algorithm.encode()
    )
    result = verify_envelope(data, {CID: PAYLOAD})
    assert rule_ids(result) == ["SEC-SIG-ALGORITHM"]
    assert algorithm in result.findings[0].detail


def test_genuine_hmac_signature_is_refused(pki: DevPki) -> None:
    """A correctly computed HMAC signature (no certificate can vouch for it) is refused."""
    root = build_envelope()
    sig = xmlsec.template.create(
        root, xmlsec.constants.TransformInclC14N, xmlsec.constants.TransformHmacSha256, ns="ds"
    )
    ref = xmlsec.template.add_reference(sig, xmlsec.constants.TransformSha256, uri="")
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
    header = root.find(f"{{{SOAP_NS}}}Header")
    assert header is not None
    header.append(sig)
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataHmac, b"shared secret")
    ctx.sign(sig)
    result = verify_envelope(etree.tostring(root), {})
    assert "SEC-SIG-ALGORITHM" in rule_ids(result)
    assert not result.valid


def test_weak_digest_is_a_finding(pki: DevPki) -> None:
    data = signed_bytes(pki).replace(
        b"http://www.w3.org/2001/04/xmlenc#sha256", b"http://www.w3.org/2001/04/xmldsig-more#md5"
    )
    assert set(rule_ids(verify_envelope(data, {CID: PAYLOAD}))) == {"SEC-SIG-ALGORITHM"}


def test_external_reference_uri_is_refused(pki: DevPki) -> None:
    data = signed_bytes(pki).replace(f'URI="cid:{CID}"'.encode(), b'URI="file:///etc/passwd"')
    assert "SEC-SIG-REFERENCE" in rule_ids(verify_envelope(data, {}))


def test_xpath_other_than_the_profile_is_refused(pki: DevPki) -> None:
    data = signed_bytes(pki).replace(b"nextMSH", b"toPartyMSH")
    assert rule_ids(verify_envelope(data, {CID: PAYLOAD})) == ["SEC-SIG-REFERENCE"]


def test_missing_certificate_is_malformed(pki: DevPki) -> None:
    root = parse_xml(signed_bytes(pki))
    key_info = root.find(f".//{DS}KeyInfo")
    assert key_info is not None
    key_info.getparent().remove(key_info)  # type: ignore[union-attr]
    result = verify_envelope(etree.tostring(root), {CID: PAYLOAD})
    assert rule_ids(result) == ["SEC-SIG-MALFORMED"]
    assert result.signer is None


def test_percent_encoded_cid_reference_resolves(pki: DevPki) -> None:
    odd = "part 1/ø@host.example"
    data = signed_bytes(pki, {odd: PAYLOAD})
    assert cid_uri(odd).encode() in data
    assert b"%20" in data
    assert verify_envelope(data, {f"<{odd}>": PAYLOAD}).valid
    assert not verify_envelope(data, {odd: PAYLOAD[:-1]}).valid


@settings(max_examples=examples(30), deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1))
def test_cid_uri_round_trips_through_normalize(content_id: str) -> None:
    content_id = content_id.strip().strip("<>")
    if not content_id:
        return
    assert normalize_cid(cid_uri(content_id)) == content_id
    assert normalize_cid(f"<{content_id}>") == content_id


def test_rsa_sha1_signature_is_accepted(pki: DevPki) -> None:
    signed = sign_envelope(
        build_envelope(),
        {CID: PAYLOAD},
        pki.municipality.signing,
        signature_method="http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    )
    assert verify_envelope(etree.tostring(signed), {CID: PAYLOAD}).valid


def test_signing_does_not_modify_the_input(pki: DevPki) -> None:
    env = build_envelope()
    before = etree.tostring(env)
    sign_envelope(env, {CID: PAYLOAD}, pki.municipality.signing)
    assert etree.tostring(env) == before


# --- MsgHead (business signature) -----------------------------------------------------------

MSGHEAD = b"""<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24">
  <MsgInfo><Type V="KPR_IPL" DN="IPLOS-melding til KPR"/><MsgId>abc</MsgId></MsgInfo>
  <Document><RefDoc><MsgType V="XML"/></RefDoc></Document>
</MsgHead>"""


def test_msghead_sign_verify_round_trip(pki: DevPki) -> None:
    signed = sign_msghead(parse_xml(MSGHEAD), pki.municipality.signing)
    assert signed[-1].tag == f"{DS}Signature"
    result = verify_msghead(etree.tostring(signed))
    assert result.valid
    assert result.signer == pki.municipality.signing.certificate


def test_msghead_tampered_is_s01(pki: DevPki) -> None:
    data = etree.tostring(sign_msghead(parse_xml(MSGHEAD), pki.municipality.signing))
    result = verify_msghead(data.replace(b"<MsgId>abc<", b"<MsgId>abd<"))
    assert rule_ids(result) == ["SEC-MSG-SIG-INVALID"]
    assert result.findings[0].rule.apprec_code == "S01"
    assert result.findings[0].rule is rules.MSG_SIG_INVALID


def test_msghead_without_signature_is_not_present() -> None:
    result = verify_msghead(MSGHEAD)
    assert not result.present
    assert not result.valid
    assert result.findings == ()


def test_msghead_weak_algorithm_is_s01(pki: DevPki) -> None:
    data = etree.tostring(sign_msghead(parse_xml(MSGHEAD), pki.municipality.signing)).replace(
        b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        b"http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
    )
    result = verify_msghead(data)
    assert rule_ids(result) == ["SEC-MSG-SIG-ALGORITHM"]
    assert result.findings[0].rule.apprec_code == "S01"


def test_concurrent_verifications_see_only_their_own_attachments(pki: DevPki) -> None:
    """The cid: resolver is process-global; the attachments it reads are per thread."""
    from concurrent.futures import ThreadPoolExecutor

    data = signed_bytes(pki)

    def check(i: int) -> bool:
        payload = PAYLOAD if i % 2 == 0 else PAYLOAD + b"tampered"
        return verify_envelope(data, {CID: payload}).valid

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(check, range(40)))
    assert results == [i % 2 == 0 for i in range(40)]
