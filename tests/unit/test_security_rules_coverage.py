"""Security rules that had no test: SEC-CMS-ALGORITHM (key transport and content cipher) and
SEC-MSG-SIG-MALFORMED, at the function level. The same rules through HTTP are in
tests/integration/test_intake_security_rules.py, which builds its payloads with `enveloped`.

`enveloped` builds CMS EnvelopedData by hand (asn1crypto + cryptography), correct in every
respect except the algorithm under test, so only that can be the reason for a refusal; the
control case (AES-256-CBC, RSA PKCS#1 v1.5) decrypts. The same refusals for EnvelopedData made
by `openssl cms -encrypt` skip without openssl unless KPR_REQUIRE_TOOLS=1 (then they fail).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree

from app.core.xmlparse import parse_xml
from app.dev.devpki import DevPki, dev_pki
from app.security import rules
from app.security.cms import decrypt_enveloped, open_payload
from app.security.xmldsig import DS_NS, sign_document, verify_document

NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
CONTENT = "<MsgHead>ærlig talt</MsgHead>".encode() * 20
DS = f"{{{DS_NS}}}"
OAEP_SHA256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_AES_KEY_BYTES = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}


def enveloped(
    content: bytes,
    recipient: x509.Certificate,
    *,
    cipher: str = "aes256_cbc",
    key_transport: str = "rsaes_pkcs1v15",
) -> bytes:
    """CMS EnvelopedData (DER) of `content` to `recipient`, with AES-CBC of the given key size
    (`cipher`: an asn1crypto name) and RSA PKCS#1 v1.5 or RSAES-OAEP (SHA-256, MGF1-SHA-256)
    key transport."""
    key, iv = os.urandom(_AES_KEY_BYTES[cipher]), os.urandom(16)
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(content) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    public = recipient.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    kea: dict[str, object]
    if key_transport == "rsaes_oaep":
        encrypted_key = public.encrypt(key, OAEP_SHA256)
        params = asn1_algos.RSAESOAEPParams(
            {
                "hash_algorithm": {"algorithm": "sha256"},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
            }
        )
        kea = {"algorithm": "rsaes_oaep", "parameters": params}
    else:
        encrypted_key = public.encrypt(key, padding.PKCS1v15())
        kea = {"algorithm": "rsaes_pkcs1v15"}
    rid = asn1_cms.RecipientIdentifier(
        name="issuer_and_serial_number",
        value=asn1_cms.IssuerAndSerialNumber(
            {
                "issuer": asn1_x509.Name.load(recipient.issuer.public_bytes()),
                "serial_number": recipient.serial_number,
            }
        ),
    )
    ktri = asn1_cms.KeyTransRecipientInfo(
        {
            "version": "v0",
            "rid": rid,
            "key_encryption_algorithm": kea,
            "encrypted_key": encrypted_key,
        }
    )
    env = asn1_cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": [asn1_cms.RecipientInfo(name="ktri", value=ktri)],
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": cipher, "parameters": iv},
                "encrypted_content": encrypted,
            },
        }
    )
    info = asn1_cms.ContentInfo({"content_type": "enveloped_data", "content": env})
    der: bytes = info.dump()
    return der


@pytest.fixture(scope="session")
def pki() -> DevPki:
    return dev_pki(NOW)


def rule_ids_of(findings: tuple[object, ...]) -> list[str]:
    return [f.rule.id for f in findings]  # type: ignore[attr-defined]


# --- SEC-CMS-ALGORITHM, hand-made EnvelopedData ------------------------------------------------


def test_handmade_enveloped_data_with_supported_algorithms_decrypts(pki: DevPki) -> None:
    """The control: the builder below makes a readable EnvelopedData."""
    for cipher in ("aes256_cbc", "aes128_cbc"):
        result = decrypt_enveloped(
            enveloped(CONTENT, pki.kpr.encryption.certificate, cipher=cipher),
            [pki.kpr.encryption],
        )
        assert result.findings == ()
        assert result.content == CONTENT
        assert result.cipher is not None
        assert result.cipher.value == cipher


def test_rsa_oaep_key_transport_is_an_algorithm_failure(pki: DevPki) -> None:
    data = enveloped(CONTENT, pki.kpr.encryption.certificate, key_transport="rsaes_oaep")
    # Proof that only the key transport is unusual: the key does unwrap with OAEP.
    ktri = asn1_cms.ContentInfo.load(data)["content"]["recipient_infos"][0].chosen
    unwrapped = pki.kpr.encryption.private_key.decrypt(ktri["encrypted_key"].native, OAEP_SHA256)
    assert len(unwrapped) == 32

    result = decrypt_enveloped(data, [pki.kpr.encryption])
    assert result.content is None
    assert rule_ids_of(result.findings) == ["SEC-CMS-ALGORITHM"]
    (finding,) = result.findings
    assert finding.rule is rules.CMS_ALGORITHM
    assert finding.rule.ebms_error_code == "SecurityFailure"
    assert "rsaes_oaep" in finding.detail
    assert "PKCS#1 v1.5" in finding.detail
    assert result.recipient == pki.kpr.encryption.certificate


def test_aes192_content_cipher_is_an_algorithm_failure(pki: DevPki) -> None:
    data = enveloped(CONTENT, pki.kpr.encryption.certificate, cipher="aes192_cbc")
    result = open_payload(data, [pki.kpr.encryption])
    assert result.content is None
    assert rule_ids_of(result.findings) == ["SEC-CMS-ALGORITHM"]
    assert "aes192_cbc" in result.findings[0].detail


def test_unsupported_algorithm_to_someone_else_is_no_recipient_not_algorithm(
    pki: DevPki,
) -> None:
    """The algorithm is only judged for a recipient entry that names one of our keys."""
    data = enveloped(CONTENT, pki.municipality.encryption.certificate, key_transport="rsaes_oaep")
    result = decrypt_enveloped(data, [pki.kpr.encryption])
    assert rule_ids_of(result.findings) == ["SEC-CMS-NO-RECIPIENT"]


# --- SEC-CMS-ALGORITHM, EnvelopedData made by openssl cms ---------------------------------------


def _openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        if os.environ.get("KPR_REQUIRE_TOOLS") == "1":
            pytest.fail("openssl is required (KPR_REQUIRE_TOOLS=1) but not installed")
        pytest.skip("openssl not installed")
    return path


def openssl_encrypt(
    tmp_path: Path, recipient: x509.Certificate, cipher: str, *keyopts: str
) -> bytes:
    (tmp_path / "recipient.crt").write_bytes(recipient.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "plain.bin").write_bytes(CONTENT)
    done = subprocess.run(
        [
            _openssl(), "cms", "-encrypt", "-binary", "-outform", "DER",
            "-in", str(tmp_path / "plain.bin"), "-out", str(tmp_path / "enc.der"),
            cipher, "-recip", str(tmp_path / "recipient.crt"), *keyopts,
        ],
        capture_output=True,
        check=False,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return (tmp_path / "enc.der").read_bytes()


@pytest.mark.tools
@pytest.mark.parametrize(
    ("args", "named"),
    [
        pytest.param(("-aes-256-cbc", "-keyopt", "rsa_padding_mode:oaep"), "rsaes_oaep", id="oaep"),
        pytest.param(("-aes-192-cbc",), "aes192_cbc", id="aes192-cbc"),
        pytest.param(("-aes-256-ofb",), "aes256_ofb", id="aes256-ofb"),
    ],
)
def test_openssl_enveloped_data_with_unsupported_algorithm_is_refused(
    pki: DevPki, tmp_path: Path, args: tuple[str, ...], named: str
) -> None:
    data = openssl_encrypt(tmp_path, pki.kpr.encryption.certificate, *args)
    result = decrypt_enveloped(data, [pki.kpr.encryption])
    assert result.content is None
    assert rule_ids_of(result.findings) == ["SEC-CMS-ALGORITHM"]
    assert named in result.findings[0].detail


@pytest.mark.tools
def test_aes_gcm_auth_enveloped_data_is_an_unsupported_algorithm(
    pki: DevPki, tmp_path: Path
) -> None:
    data = openssl_encrypt(tmp_path, pki.kpr.encryption.certificate, "-aes-256-gcm")
    result = decrypt_enveloped(data, [pki.kpr.encryption])
    assert result.content is None
    assert rule_ids_of(result.findings) == ["SEC-CMS-ALGORITHM"]
    assert "AES-256-CBC" in result.findings[0].detail


@pytest.mark.tools
def test_openssl_enveloped_data_with_supported_algorithm_decrypts(
    pki: DevPki, tmp_path: Path
) -> None:
    data = openssl_encrypt(tmp_path, pki.kpr.encryption.certificate, "-aes-256-cbc")
    result = decrypt_enveloped(data, [pki.kpr.encryption])
    assert (result.findings, result.content) == ((), CONTENT)


# --- SEC-MSG-SIG-MALFORMED ---------------------------------------------------------------------

MSGHEAD = b"""<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24">
  <MsgInfo><Type V="KPR_IPL" DN="IPLOS-melding til KPR"/><MsgId>abc</MsgId></MsgInfo>
  <Document><RefDoc><MsgType V="XML"/></RefDoc></Document>
</MsgHead>"""


def _signed(pki: DevPki) -> etree._Element:
    # Re-parsed: lxml's find() does not see the nodes libxmlsec added in place.
    signed = sign_document(parse_xml(MSGHEAD), pki.municipality.signing)
    return etree.fromstring(etree.tostring(signed))


def _drop(root: etree._Element, path: str) -> bytes:
    found = root.find(path)
    assert found is not None
    parent = found.getparent()
    assert parent is not None
    parent.remove(found)
    return etree.tostring(root)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(f"{DS}Signature/{DS}SignatureValue", id="no-signature-value"),
        pytest.param(f"{DS}Signature/{DS}SignedInfo", id="no-signed-info"),
        pytest.param(f"{DS}Signature/{DS}KeyInfo", id="no-certificate"),
    ],
)
def test_msghead_signature_missing_a_part_is_malformed_s01(pki: DevPki, path: str) -> None:
    assert verify_document(etree.tostring(_signed(pki))).valid  # the control
    result = verify_document(_drop(_signed(pki), path))
    assert result.present
    assert not result.valid
    assert result.findings
    assert set(rule_ids_of(result.findings)) == {"SEC-MSG-SIG-MALFORMED"}
    assert result.findings[0].rule.apprec_code == "S01"


def test_msghead_with_two_signatures_is_malformed(pki: DevPki) -> None:
    root = _signed(pki)
    signature = root.find(f"{DS}Signature")
    assert signature is not None
    root.append(etree.fromstring(etree.tostring(signature)))
    result = verify_document(etree.tostring(root))
    assert rule_ids_of(result.findings) == ["SEC-MSG-SIG-MALFORMED"]
    assert "2 signaturer" in result.findings[0].detail
