"""Interoperability with the reference tools: xmlsec1 (XML-DSig) and openssl cms (CMS).

These skip when a tool is missing, unless KPR_REQUIRE_TOOLS=1 (then they fail). xmlsec1 cannot
resolve `cid:` URIs by itself; `--url-map:cid:<id> <file>` maps the attachment's URI to a file
holding its decoded bytes, so the full two-reference ebMS signature is exercised both ways.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from app.dev.devpki import DevPki, dev_pki, write_dev_pki
from app.security.cms import (
    ContentCipher,
    decrypt_enveloped,
    encrypt_enveloped,
    sign_data,
    verify_signed_data,
)
from app.security.xmldsig import EBMS_XPATH, SOAP_NS, verify_envelope
from tests.unit.test_security_xmldsig import CID, ENVELOPE, PAYLOAD, signed_bytes

pytestmark = pytest.mark.tools

NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
CONTENT = "<MsgHead>blåbær</MsgHead>\n".encode() * 100


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("KPR_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{name} is required (KPR_REQUIRE_TOOLS=1) but not installed")
        pytest.skip(f"{name} not installed")
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(a) for a in args], capture_output=True, check=False, timeout=60)


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[DevPki, Path]:
    pki = dev_pki(NOW)
    directory = tmp_path_factory.mktemp("pki")
    write_dev_pki(directory, pki)
    return pki, directory


# --- XML-DSig with xmlsec1 ----------------------------------------------------------------------


def test_our_envelope_signature_verifies_with_xmlsec1(
    pki_dir: tuple[DevPki, Path], tmp_path: Path
) -> None:
    xmlsec1 = tool("xmlsec1")
    pki, keys = pki_dir
    (tmp_path / "signed.xml").write_bytes(signed_bytes(pki))
    (tmp_path / "payload.bin").write_bytes(PAYLOAD)
    args = (
        "--verify",
        "--pubkey-cert-pem",
        keys / "municipality-signing.crt",
        f"--url-map:cid:{CID}",
    )
    ok = run(xmlsec1, *args, tmp_path / "payload.bin", tmp_path / "signed.xml")
    assert ok.returncode == 0, ok.stderr.decode()
    (tmp_path / "tampered.bin").write_bytes(PAYLOAD + b"!")
    bad = run(xmlsec1, *args, tmp_path / "tampered.bin", tmp_path / "signed.xml")
    assert bad.returncode != 0


TEMPLATE_SIGNATURE = f"""<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
<ds:SignedInfo>
<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>
<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
<ds:Reference URI=""><ds:Transforms>
<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116">
<ds:XPath xmlns:SOAP-ENV="{SOAP_NS}">{EBMS_XPATH}</ds:XPath></ds:Transform>
<ds:Transform Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>
</ds:Transforms>
<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/>
</ds:Reference>
<ds:Reference URI="cid:{CID}">
<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/>
</ds:Reference>
</ds:SignedInfo><ds:SignatureValue/>
<ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo>
</ds:Signature>"""


def test_xmlsec1_signed_envelope_verifies_with_our_code(
    pki_dir: tuple[DevPki, Path], tmp_path: Path
) -> None:
    xmlsec1 = tool("xmlsec1")
    pki, keys = pki_dir
    template = ENVELOPE.replace("</SOAP:Header>", TEMPLATE_SIGNATURE + "</SOAP:Header>")
    (tmp_path / "template.xml").write_text(template, encoding="utf-8")
    (tmp_path / "payload.bin").write_bytes(PAYLOAD)
    key_and_cert = f"{keys / 'municipality-signing.key'},{keys / 'municipality-signing.crt'}"
    signed = run(
        xmlsec1,
        "--sign",
        "--privkey-pem",
        key_and_cert,
        f"--url-map:cid:{CID}",
        tmp_path / "payload.bin",
        "--output",
        tmp_path / "signed.xml",
        tmp_path / "template.xml",
    )
    assert signed.returncode == 0, signed.stderr.decode()
    data = (tmp_path / "signed.xml").read_bytes()
    result = verify_envelope(data, {CID: PAYLOAD})
    assert result.valid, result.findings
    assert result.signer == pki.municipality.signing.certificate
    assert not verify_envelope(data, {CID: PAYLOAD[1:]}).valid
    tampered = data.replace(b"<eb:Action>KPR_IPL<", b"<eb:Action>KPR_IDE<")
    assert not verify_envelope(tampered, {CID: PAYLOAD}).valid


def test_xmllint_sees_our_signed_envelope_as_well_formed(
    pki_dir: tuple[DevPki, Path], tmp_path: Path
) -> None:
    xmllint = tool("xmllint")
    pki, _ = pki_dir
    (tmp_path / "signed.xml").write_bytes(signed_bytes(pki))
    result = run(xmllint, "--noout", tmp_path / "signed.xml")
    assert result.returncode == 0, result.stderr.decode()
    root = etree.fromstring((tmp_path / "signed.xml").read_bytes())
    assert root.tag == f"{{{SOAP_NS}}}Envelope"


# --- CMS with openssl ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "cipher"),
    [
        ("-aes256", ContentCipher.AES256_CBC),
        ("-aes128", ContentCipher.AES128_CBC),
        ("-des3", ContentCipher.DES3_CBC),
    ],
)
def test_openssl_encrypted_payload_decrypts_with_our_code(
    pki_dir: tuple[DevPki, Path], tmp_path: Path, flag: str, cipher: ContentCipher
) -> None:
    openssl = tool("openssl")
    pki, keys = pki_dir
    (tmp_path / "content").write_bytes(CONTENT)
    enc = run(
        openssl, "cms", "-encrypt", "-binary", flag, "-outform", "DER",
        "-in", tmp_path / "content", "-out", tmp_path / "enc.der",
        keys / "kpr-encryption.crt",
    )  # fmt: skip
    assert enc.returncode == 0, enc.stderr.decode()
    result = decrypt_enveloped((tmp_path / "enc.der").read_bytes(), [pki.kpr.encryption])
    assert result.findings == ()
    assert result.cipher is cipher
    assert result.content == CONTENT


def test_openssl_pem_output_decrypts_too(pki_dir: tuple[DevPki, Path], tmp_path: Path) -> None:
    openssl = tool("openssl")
    pki, keys = pki_dir
    (tmp_path / "content").write_bytes(CONTENT)
    enc = run(
        openssl, "cms", "-encrypt", "-binary", "-aes256", "-outform", "PEM",
        "-in", tmp_path / "content", "-out", tmp_path / "enc.pem",
        keys / "kpr-encryption.crt",
    )  # fmt: skip
    assert enc.returncode == 0, enc.stderr.decode()
    assert (
        decrypt_enveloped((tmp_path / "enc.pem").read_bytes(), [pki.kpr.encryption]).content
        == CONTENT
    )


def test_our_encrypted_payload_decrypts_with_openssl(
    pki_dir: tuple[DevPki, Path], tmp_path: Path
) -> None:
    openssl = tool("openssl")
    pki, keys = pki_dir
    (tmp_path / "ours.der").write_bytes(
        encrypt_enveloped(CONTENT, pki.municipality.encryption.certificate)
    )
    dec = run(
        openssl, "cms", "-decrypt", "-binary", "-inform", "DER",
        "-in", tmp_path / "ours.der", "-out", tmp_path / "plain",
        "-recip", keys / "municipality-encryption.crt",
        "-inkey", keys / "municipality-encryption.key",
    )  # fmt: skip
    assert dec.returncode == 0, dec.stderr.decode()
    assert (tmp_path / "plain").read_bytes() == CONTENT


def test_openssl_signed_data_verifies_with_our_code(
    pki_dir: tuple[DevPki, Path], tmp_path: Path
) -> None:
    openssl = tool("openssl")
    pki, keys = pki_dir
    (tmp_path / "content").write_bytes(CONTENT)
    signed = run(
        openssl, "cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-md", "sha256",
        "-in", tmp_path / "content", "-out", tmp_path / "signed.der",
        "-signer", keys / "municipality-signing.crt",
        "-inkey", keys / "municipality-signing.key",
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr.decode()
    result = verify_signed_data((tmp_path / "signed.der").read_bytes())
    assert result.findings == ()
    assert result.content == CONTENT
    assert result.signer == pki.municipality.signing.certificate


def test_our_signed_data_verifies_with_openssl(
    pki_dir: tuple[DevPki, Path], tmp_path: Path
) -> None:
    openssl = tool("openssl")
    pki, _ = pki_dir
    (tmp_path / "ours.der").write_bytes(sign_data(CONTENT, pki.municipality.signing))
    verified = run(
        openssl, "cms", "-verify", "-binary", "-inform", "DER", "-noverify",
        "-in", tmp_path / "ours.der", "-out", tmp_path / "plain",
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr.decode()
    assert (tmp_path / "plain").read_bytes() == CONTENT
