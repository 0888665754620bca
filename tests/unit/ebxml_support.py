"""Helpers shared by the test_ebxml_* modules (no tests here)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from app.core.cid import cid_uri as cid_url
from app.ebxml.build import BuiltMessage, Cte, Payload, build_message, her_party
from app.ebxml.envelope import DS_NS, SOAP_NS, Description, Service

SENDER_HER = "8000001"
KPR_HER = "131725"
NOW = datetime(2018, 11, 20, 12, 0, tzinfo=UTC)
CMS_LIKE = b"\x30\x82\x10\x88" + bytes(range(256)) * 8 + b"\r\n--not-a-boundary\r\n\x00\xff"
PKCS7 = "application/pkcs7-mime; smime-type=enveloped-data"


def sample(reference_dir: Path, name: str) -> bytes:
    return (reference_dir / "samples" / "ebxml" / name).read_bytes()


def official_schema(reference_dir: Path) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    doc = etree.parse(str(reference_dir / "xsd" / "ebxml" / "msg-header-2_0.xsd"), parser)
    return etree.XMLSchema(doc)


def business_message(
    *,
    soap_cte: Cte = "binary",
    payload_cte: Cte = "base64",
    payload: bytes = CMS_LIKE,
    message_id: str = "b7f0b4d6-6f1f-4c1e-9e8a-4b1f2d3c4e5f",
    time_to_live: datetime | None = None,
    sign: FakeSigner | None = None,
    to_her: str = KPR_HER,
    content_id: str | None = None,
) -> BuiltMessage:
    return build_message(
        from_party=her_party(SENDER_HER, "Kommune"),
        to_party=her_party(to_her, "KPR"),
        cpa_id="kpr:test:1",
        conversation_id="conv-1",
        service=Service("KPR", "string"),
        action="KPR_IPL",
        message_id=message_id,
        timestamp=NOW,
        payload=Payload(payload, PKCS7, content_id=content_id, cte=payload_cte),
        time_to_live=time_to_live,
        descriptions=(Description('{"MSH-system":"Test","MSH-versjon":"1"}', "NO"),),
        soap_cte=soap_cte,
        sign=sign,
    )


@dataclass
class FakeSigner:
    """Stands in for app/security: inserts a schema-valid ds:Signature with an envelope
    reference and one cid: reference per attachment (digests real, signature value fake)."""

    calls: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)

    def __call__(
        self, envelope: etree._Element, attachments: Mapping[str, bytes]
    ) -> etree._Element:
        self.calls.append((str(envelope.tag), dict(attachments)))
        header = envelope.find(f"{{{SOAP_NS}}}Header")
        assert header is not None
        ds = f"{{{DS_NS}}}"
        sig = etree.SubElement(header, ds + "Signature", nsmap={"ds": DS_NS})
        info = etree.SubElement(sig, ds + "SignedInfo")
        etree.SubElement(info, ds + "CanonicalizationMethod").set(
            "Algorithm", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
        )
        etree.SubElement(info, ds + "SignatureMethod").set(
            "Algorithm", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
        )
        targets = [("", b"envelope")] + [(cid_url(c), d) for c, d in attachments.items()]
        for uri, data in targets:
            ref = etree.SubElement(info, ds + "Reference")
            ref.set("URI", uri)
            transforms = etree.SubElement(ref, ds + "Transforms")
            xpath = etree.SubElement(
                etree.SubElement(transforms, ds + "Transform"),
                ds + "XPath",
                nsmap={"SOAP-ENV": SOAP_NS},
            )
            xpath.getparent().set(  # type: ignore[union-attr]
                "Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116"
            )
            xpath.text = 'not(ancestor-or-self::node()[@SOAP-ENV:actor="urn:x"])'
            etree.SubElement(ref, ds + "DigestMethod").set(
                "Algorithm", "http://www.w3.org/2001/04/xmlenc#sha256"
            )
            digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
            etree.SubElement(ref, ds + "DigestValue").text = digest
        etree.SubElement(sig, ds + "SignatureValue").text = base64.b64encode(b"x" * 32).decode()
        return envelope
