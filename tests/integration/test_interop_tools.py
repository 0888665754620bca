"""Interop through HTTP with Debian's reference tools, xmlsec1 and openssl cms.

A message built by the tools (MsgHead and ebXML envelope signed with `xmlsec1 --sign`, the
payload encrypted with `openssl cms -encrypt`) is accepted; our signed reply verifies with
`xmlsec1 --verify` and our encrypted AppRec decrypts with `openssl cms -decrypt`.

xmlsec1 cannot resolve `cid:` URIs itself: `--url-map:<cid: URI> <file>` maps the payload's
reference to a file holding its bytes. These tests skip when a tool is missing, unless
KPR_REQUIRE_TOOLS=1 (then they fail).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from lxml import etree
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.apprec.parse import parse_apprec
from app.core.xmlparse import parse_xml
from app.dev.client import SendOptions, build_ebxml
from app.dev.devpki import DevPki
from app.dev.replyendpoint import reply_endpoint
from app.ebxml.build import Payload, Signer
from app.ebxml.mime import parse_body
from app.models import MessageEvent
from app.platform.settings import Settings
from app.security.xmldsig import EBMS_XPATH, SOAP_NS, cid_uri
from tests.integration.conftest import served
from tests.integration.messages import DEMO_HER, epj_message, msghead, post
from tests.integration.test_async_replies import CPA_ID, arrived, cpa_for, register_cpa

# interop with the reference tools: no SQL that differs between the databases
pytestmark = [pytest.mark.tools, pytest.mark.databases("sqlite")]

PKCS7 = "application/pkcs7-mime; smime-type=enveloped-data"
_DS_HEAD = """<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
<ds:SignedInfo>
<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>
<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>"""
_DS_TAIL = """</ds:SignedInfo><ds:SignatureValue/>
<ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo>
</ds:Signature>"""
_DIGEST = '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/>'
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"


def envelope_template(cid: str) -> str:
    """The ebMS 2.0 envelope signature: URI="" with enveloped-signature, the profile's XPath
    and c14n, plus the payload part by its cid: URI."""
    return f"""{_DS_HEAD}
<ds:Reference URI=""><ds:Transforms>
<ds:Transform Algorithm="{ENVELOPED}"/>
<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116">
<ds:XPath xmlns:SOAP-ENV="{SOAP_NS}">{EBMS_XPATH}</ds:XPath></ds:Transform>
<ds:Transform Algorithm="{C14N}"/>
</ds:Transforms>{_DIGEST}</ds:Reference>
<ds:Reference URI="{cid_uri(cid)}">{_DIGEST}</ds:Reference>
{_DS_TAIL}"""


DOCUMENT_TEMPLATE = f"""{_DS_HEAD}
<ds:Reference URI=""><ds:Transforms>
<ds:Transform Algorithm="{ENVELOPED}"/><ds:Transform Algorithm="{C14N}"/>
</ds:Transforms>{_DIGEST}</ds:Reference>
{_DS_TAIL}"""


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("KPR_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{name} is required (KPR_REQUIRE_TOOLS=1) but not installed")
        pytest.skip(f"{name} not installed")
    return path


def run(*args: str | Path) -> bytes:
    """Run a tool; fail the test with its stderr when it exits non-zero."""
    done = subprocess.run([str(a) for a in args], capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, f"{args[0]} failed: {done.stderr.decode(errors='replace')}"
    return done.stdout


@dataclass(frozen=True, slots=True)
class Tools:
    xmlsec1: str
    openssl: str
    keys: Path  # the dev PKI as PEM files
    work: Path

    def sign_document(self, document: bytes) -> bytes:
        """MsgHead with an enveloped ds:Signature made by xmlsec1."""
        close = document.rindex(b"</MsgHead>")
        template = document[:close] + DOCUMENT_TEMPLATE.encode() + document[close:]
        (self.work / "msghead-template.xml").write_bytes(template)
        run(
            self.xmlsec1, "--sign", "--privkey-pem", self._signing_key(),
            "--output", self.work / "msghead-signed.xml", self.work / "msghead-template.xml",
        )  # fmt: skip
        return (self.work / "msghead-signed.xml").read_bytes()

    def encrypt(self, data: bytes, cipher_flag: str) -> bytes:
        """CMS EnvelopedData (DER) to KPR's encryption certificate, by openssl cms."""
        (self.work / "plain.bin").write_bytes(data)
        run(
            self.openssl, "cms", "-encrypt", "-binary", cipher_flag, "-outform", "DER",
            "-in", self.work / "plain.bin", "-out", self.work / "enc.der",
            self.keys / "kpr-encryption.crt",
        )  # fmt: skip
        return (self.work / "enc.der").read_bytes()

    def envelope_signer(self) -> Signer:
        """Sign the ebXML envelope with xmlsec1 (a template in SOAP:Header, the payload
        reached through --url-map)."""

        def sign(envelope: etree._Element, parts: Mapping[str, bytes]) -> etree._Element:
            ((cid, data),) = parts.items()
            text = etree.tostring(envelope, encoding="unicode")
            assert "</SOAP:Header>" in text
            template = text.replace("</SOAP:Header>", envelope_template(cid) + "</SOAP:Header>")
            (self.work / "soap-template.xml").write_text(template, encoding="utf-8")
            (self.work / "payload.bin").write_bytes(data)
            run(
                self.xmlsec1, "--sign", "--privkey-pem", self._signing_key(),
                f"--url-map:{cid_uri(cid)}", self.work / "payload.bin",
                "--output", self.work / "soap-signed.xml", self.work / "soap-template.xml",
            )  # fmt: skip
            return parse_xml((self.work / "soap-signed.xml").read_bytes())

        return sign

    def verify_reply(self, soap: bytes, cid: str, part: bytes) -> None:
        """xmlsec1 verifies our reply's signature with KPR's signing certificate."""
        (self.work / "reply.xml").write_bytes(soap)
        (self.work / "reply-part.bin").write_bytes(part)
        run(
            self.xmlsec1, "--verify", "--pubkey-cert-pem", self.keys / "kpr-signing.crt",
            f"--url-map:{cid_uri(cid)}", self.work / "reply-part.bin", self.work / "reply.xml",
        )  # fmt: skip

    def reply_verifies_with(self, soap: bytes, cid: str, part: bytes) -> bool:
        try:
            self.verify_reply(soap, cid, part)
        except AssertionError:
            return False
        return True

    def decrypt_as_municipality(self, data: bytes) -> bytes:
        (self.work / "apprec.der").write_bytes(data)
        run(
            self.openssl, "cms", "-decrypt", "-binary", "-inform", "DER",
            "-in", self.work / "apprec.der", "-out", self.work / "apprec.xml",
            "-recip", self.keys / "municipality-encryption.crt",
            "-inkey", self.keys / "municipality-encryption.key",
        )  # fmt: skip
        # What decrypts is our CMS SignedData: verify KPR's signature with openssl as well.
        run(
            self.openssl, "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
            "-in", self.work / "apprec.xml", "-out", self.work / "apprec-content.xml",
            "-CAfile", self.keys / "ca.crt",
        )  # fmt: skip
        return (self.work / "apprec-content.xml").read_bytes()

    def _signing_key(self) -> str:
        return f"{self.keys / 'municipality-signing.key'},{self.keys / 'municipality-signing.crt'}"


@pytest.fixture
def tools(settings_with_pki: Settings, tmp_path: Path) -> Tools:
    return Tools(tool("xmlsec1"), tool("openssl"), settings_with_pki.pki_dir, tmp_path)


def tool_built_message(tools: Tools, head: bytes, cipher_flag: str) -> tuple[bytes, str, str]:
    """(HTTP body, Content-Type, MessageId) of a message the tools signed and encrypted."""
    encrypted = tools.encrypt(tools.sign_document(head), cipher_flag)
    built = build_ebxml(
        Payload(encrypted, PKCS7),
        SendOptions(from_her=DEMO_HER),
        None,
        sign=tools.envelope_signer(),
    )
    assert b"<ds:SignatureValue>" in built.soap  # signed by xmlsec1, not by us
    return built.body, built.content_type, built.message_id


@pytest.mark.parametrize(
    ("cipher_flag", "cipher"),
    [("-aes256", "aes256_cbc"), ("-aes128", "aes128_cbc"), ("-des3", "tripledes_3key")],
)
async def test_message_signed_by_xmlsec1_and_encrypted_by_openssl_is_accepted(
    intake: httpx.AsyncClient,
    tools: Tools,
    sessions: async_sessionmaker[AsyncSession],
    cipher_flag: str,
    cipher: str,
) -> None:
    head = msghead()
    body, content_type, message_id = tool_built_message(tools, head, cipher_flag)
    r = await intake.post(
        "/ebms", content=body, headers={"Content-Type": content_type, "SOAPAction": '"ebXML"'}
    )
    assert r.status_code == 200
    mime = parse_body(r.content, r.headers["content-type"], max_parts=8).message
    assert mime is not None
    (part,) = mime.attachments
    apprec = parse_apprec(tools.decrypt_as_municipality(part.data))
    assert apprec.status == "1", apprec.errors
    assert apprec.original.id == parse_xml(head).findtext(
        "{http://www.kith.no/xmlstds/msghead/2006-05-24}MsgInfo/"
        "{http://www.kith.no/xmlstds/msghead/2006-05-24}MsgId"
    )
    async with sessions() as s:
        events = {
            e.kind: e.detail
            for e in await s.scalars(select(MessageEvent).order_by(MessageEvent.id))
        }
    assert events["signature_checked"]["valid"] is True
    assert events["decrypted"]["cipher"] == cipher
    assert events["document_signature_checked"]["valid"] is True
    assert message_id.encode() in r.content  # RefToMessageId of the reply


async def test_our_signed_reply_verifies_with_xmlsec1_and_apprec_decrypts_with_openssl(
    intake: httpx.AsyncClient, pki: DevPki, tools: Tools
) -> None:
    r = await post(intake, epj_message(pki))
    mime = parse_body(r.content, r.headers["content-type"], max_parts=8).message
    assert mime is not None
    (part,) = mime.attachments
    tools.verify_reply(mime.soap, part.content_id, part.data)
    # xmlsec1 really checks both references: a changed AppRec part or header fails.
    assert not tools.reply_verifies_with(mime.soap, part.content_id, part.data + b"\x00")
    tampered = mime.soap.replace(b"<eb:Action>APPREC<", b"<eb:Action>APPREX<")
    assert tampered != mime.soap
    assert not tools.reply_verifies_with(tampered, part.content_id, part.data)
    apprec = parse_apprec(tools.decrypt_as_municipality(part.data))
    assert apprec.status == "1"
    assert apprec.receiver.id == DEMO_HER


async def test_a_reply_posted_to_the_cpas_endpoint_verifies_with_xmlsec1_and_openssl(
    settings_with_pki: Settings,
    demo_party: int,
    sessions: async_sessionmaker[AsyncSession],
    pki: DevPki,
    tools: Tools,
) -> None:
    """Issue 26: the reply a `syncReplyMode="none"` sender's endpoint receives is the signed
    Acknowledgment and AppRec, checked with the Debian tools."""
    loopback = settings_with_pki.model_copy(update={"outbound_allow_private": True})
    with reply_endpoint() as endpoint:
        await register_cpa(sessions, cpa_for(endpoint.url))
        async with served(loopback) as client:
            r = await post(client, epj_message(pki, cpa_id=CPA_ID))
            assert (r.status_code, r.content) == (200, b"")
            posted = await arrived(endpoint)
    mime = parse_body(posted.body, posted.content_type, max_parts=8).message
    assert mime is not None
    (part,) = mime.attachments
    tools.verify_reply(mime.soap, part.content_id, part.data)
    assert b"<eb:Acknowledgment" in mime.soap
    apprec = parse_apprec(tools.decrypt_as_municipality(part.data))
    assert apprec.status == "1"
