"""CMS EnvelopedData / SignedData and the gzip cap."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import os
import zlib

import pytest
from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7
from hypothesis import given, settings
from hypothesis import strategies as st

from app.dev.devpki import DevPki, dev_pki
from app.security.cms import (
    ContentCipher,
    decrypt_enveloped,
    encrypt_enveloped,
    inflate,
    is_signed_data,
    open_payload,
    sign_data,
    verify_signed_data,
)
from app.security.keys import serial_text
from tests.budgets import examples

NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
CONTENT = "<MsgHead>ærlig talt</MsgHead>".encode() * 50


@pytest.fixture(scope="session")
def pki() -> DevPki:
    return dev_pki(NOW)


def legacy_enveloped(
    content: bytes, recipients: list[x509.Certificate], cipher: ContentCipher
) -> bytes:
    """EnvelopedData with any of our three ciphers, built by hand (as old EPJ systems do)."""
    key_len = {"aes256_cbc": 32, "aes128_cbc": 16, "tripledes_3key": 24}[cipher.value]
    block = 8 if cipher is ContentCipher.DES3_CBC else 16
    key, iv = os.urandom(key_len), os.urandom(block)
    padder = sym_padding.PKCS7(block * 8).padder()
    padded = padder.update(content) + padder.finalize()
    algo = TripleDES(key) if cipher is ContentCipher.DES3_CBC else algorithms.AES(key)
    enc = Cipher(algo, modes.CBC(iv)).encryptor()
    encrypted = enc.update(padded) + enc.finalize()
    infos = []
    for cert in recipients:
        pub = cert.public_key()
        encrypted_key = pub.encrypt(key, padding.PKCS1v15())  # type: ignore[union-attr]
        infos.append(
            asn1_cms.RecipientInfo(
                name="ktri",
                value={
                    "version": "v0",
                    "rid": asn1_cms.RecipientIdentifier(
                        name="issuer_and_serial_number",
                        value={
                            "issuer": asn1_x509.Name.load(cert.issuer.public_bytes()),
                            "serial_number": cert.serial_number,
                        },
                    ),
                    "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15"},
                    "encrypted_key": encrypted_key,
                },
            )
        )
    info = asn1_cms.ContentInfo(
        {
            "content_type": "enveloped_data",
            "content": {
                "version": "v0",
                "recipient_infos": infos,
                "encrypted_content_info": {
                    "content_type": "data",
                    "content_encryption_algorithm": asn1_algos.EncryptionAlgorithm(
                        {"algorithm": cipher.value, "parameters": iv}
                    ),
                    "encrypted_content": encrypted,
                },
            },
        }
    )
    der: bytes = info.dump()
    return der


def rule_ids(findings: tuple[object, ...]) -> list[str]:
    return [f.rule.id for f in findings]  # type: ignore[attr-defined]


def test_encrypt_decrypt_round_trip_uses_aes256(pki: DevPki) -> None:
    der = encrypt_enveloped(CONTENT, pki.kpr.encryption.certificate)
    result = decrypt_enveloped(der, [pki.kpr.encryption])
    assert result.content == CONTENT
    assert result.cipher is ContentCipher.AES256_CBC
    assert result.recipient == pki.kpr.encryption.certificate


def test_our_encryption_decrypts_with_cryptography(pki: DevPki) -> None:
    der = encrypt_enveloped(CONTENT, pki.kpr.encryption.certificate)
    pair = pki.kpr.encryption
    assert pkcs7.pkcs7_decrypt_der(der, pair.certificate, pair.private_key, []) == CONTENT


@pytest.mark.parametrize("cipher", list(ContentCipher))
def test_each_cipher_decrypts(pki: DevPki, cipher: ContentCipher) -> None:
    der = legacy_enveloped(CONTENT, [pki.kpr.encryption.certificate], cipher)
    result = decrypt_enveloped(der, [pki.kpr.encryption])
    assert result.findings == ()
    assert result.content == CONTENT
    assert result.cipher is cipher


def test_recipient_is_chosen_by_issuer_and_serial_among_several_keys(pki: DevPki) -> None:
    """Certificate rollover: several of our keys live; the message names one recipient."""
    der = legacy_enveloped(
        CONTENT,
        [pki.municipality.signing.certificate, pki.kpr.encryption.certificate],
        ContentCipher.AES128_CBC,
    )
    result = decrypt_enveloped(der, [pki.kpr.signing, pki.kpr.encryption])
    assert result.content == CONTENT
    assert result.recipient == pki.kpr.encryption.certificate


def test_wrong_recipient_is_security_failure(pki: DevPki) -> None:
    der = encrypt_enveloped(CONTENT, pki.municipality.encryption.certificate)
    result = decrypt_enveloped(der, [pki.kpr.encryption])
    assert result.content is None
    assert rule_ids(result.findings) == ["SEC-CMS-NO-RECIPIENT"]
    finding = result.findings[0]
    assert finding.rule.ebms_error_code == "SecurityFailure"
    assert serial_text(pki.municipality.encryption.certificate) in finding.detail


def test_pem_and_base64_input_are_tolerated(pki: DevPki) -> None:
    der = encrypt_enveloped(CONTENT, pki.kpr.encryption.certificate)
    b64 = base64.encodebytes(der)
    pem = b"-----BEGIN PKCS7-----\n" + b64 + b"-----END PKCS7-----\n"
    for variant in (b64, pem, b"\r\n" + b64):
        assert decrypt_enveloped(variant, [pki.kpr.encryption]).content == CONTENT


@settings(max_examples=examples(50), deadline=None)
@given(st.binary(max_size=300))
def test_garbage_is_malformed_not_an_exception(data: bytes) -> None:
    result = decrypt_enveloped(data, [dev_pki(NOW).kpr.encryption])
    assert result.content is None
    assert rule_ids(result.findings)[0].startswith("SEC-CMS-")


def test_corrupted_ciphertext_is_decrypt_failure(pki: DevPki) -> None:
    der = bytearray(encrypt_enveloped(CONTENT, pki.kpr.encryption.certificate))
    der[-1] ^= 0xFF  # last block: breaks the padding
    result = decrypt_enveloped(bytes(der), [pki.kpr.encryption])
    assert result.content is None or result.content != CONTENT
    if result.content is None:
        assert rule_ids(result.findings) == ["SEC-CMS-DECRYPT"]


def test_signed_data_is_not_enveloped_data(pki: DevPki) -> None:
    result = decrypt_enveloped(sign_data(CONTENT, pki.kpr.signing), [pki.kpr.encryption])
    assert rule_ids(result.findings) == ["SEC-CMS-MALFORMED"]


# --- gzip -----------------------------------------------------------------------------------


def test_inflate_passes_plain_content_through() -> None:
    result = inflate(CONTENT)
    assert result.content == CONTENT
    assert not result.compressed


def test_inflate_gunzips() -> None:
    result = inflate(gzip.compress(CONTENT))
    assert result.content == CONTENT
    assert result.compressed


def test_inflate_handles_multi_member_gzip() -> None:
    assert inflate(gzip.compress(b"abc") + gzip.compress(b"def")).content == b"abcdef"


def test_zip_bomb_is_a_finding() -> None:
    bomb = gzip.compress(b"\0" * 20_000_000)
    assert len(bomb) < 100_000
    result = inflate(bomb, max_size=1_000_000)
    assert result.content is None
    assert rule_ids(result.findings) == ["SEC-GZIP-TOO-LARGE"]
    assert result.findings[0].rule.apprec_code == "T99"


def test_inflate_exactly_at_the_cap_is_fine() -> None:
    assert inflate(gzip.compress(b"a" * 1000), max_size=1000).content == b"a" * 1000


@pytest.mark.parametrize(
    "data",
    [gzip.compress(CONTENT)[:-20], b"\x1f\x8bnot really gzip", gzip.compress(b"x") + b"junk"],
    ids=["cut", "not-gzip", "trailing-junk"],  # stable: gzip's header holds the time
)
def test_corrupt_gzip_is_a_finding(data: bytes) -> None:
    result = inflate(data)
    assert rule_ids(result.findings) == ["SEC-GZIP-CORRUPT"]
    assert result.findings[0].rule.apprec_code == "T01"


@settings(max_examples=examples(50), deadline=None)
@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=3000))
def test_inflate_never_exceeds_the_cap(data: bytes, cap: int) -> None:
    result = inflate(gzip.compress(data), max_size=cap)
    if len(data) <= cap:
        assert result.content == data
    else:
        assert result.content is None


def test_raw_deflate_is_not_mistaken_for_gzip() -> None:
    raw = zlib.compress(CONTENT)
    assert inflate(raw).content == raw


# --- SignedData and the whole payload -------------------------------------------------------


def test_signed_data_round_trip(pki: DevPki) -> None:
    sd = sign_data(CONTENT, pki.municipality.signing)
    assert is_signed_data(sd)
    assert not is_signed_data(CONTENT)
    result = verify_signed_data(sd)
    assert result.findings == ()
    assert result.content == CONTENT
    assert result.signer == pki.municipality.signing.certificate


def test_signed_data_tampered_is_s01(pki: DevPki) -> None:
    sd = bytearray(sign_data(CONTENT, pki.municipality.signing))
    at = bytes(sd).find(b"MsgHead")
    sd[at] = ord("X")
    result = verify_signed_data(bytes(sd))
    assert rule_ids(result.findings) == ["SEC-MSG-SIG-INVALID"]
    assert result.findings[0].rule.apprec_code == "S01"
    assert result.signer == pki.municipality.signing.certificate


def test_signed_data_with_foreign_certificate_is_s01(pki: DevPki) -> None:
    """Signed by one key while carrying another certificate (same issuer/serial swapped in)."""
    sd_other = sign_data(CONTENT, pki.kpr.signing)
    info = asn1_cms.ContentInfo.load(sign_data(CONTENT, pki.municipality.signing))
    other = asn1_cms.ContentInfo.load(sd_other)
    # Put the other signer's signature value into this structure.
    info["content"]["signer_infos"][0]["signature"] = other["content"]["signer_infos"][0][
        "signature"
    ].native
    result = verify_signed_data(info.dump(force=True))
    assert rule_ids(result.findings) == ["SEC-MSG-SIG-INVALID"]


def test_sign_then_encrypt_then_gzip_opens(pki: DevPki) -> None:
    inner = sign_data(gzip.compress(CONTENT), pki.municipality.signing)
    der = encrypt_enveloped(inner, pki.kpr.encryption.certificate)
    result = open_payload(der, [pki.kpr.encryption])
    assert result.findings == ()
    assert result.content == CONTENT
    assert result.cms_signed
    assert result.compressed
    assert result.signer == pki.municipality.signing.certificate


def test_gzip_then_encrypt_opens(pki: DevPki) -> None:
    der = encrypt_enveloped(gzip.compress(CONTENT), pki.kpr.encryption.certificate)
    result = open_payload(der, [pki.kpr.encryption])
    assert result.content == CONTENT
    assert result.compressed
    assert not result.cms_signed
    assert result.signer is None


def test_payload_zip_bomb_is_a_finding(pki: DevPki) -> None:
    der = encrypt_enveloped(gzip.compress(b"\0" * 5_000_000), pki.kpr.encryption.certificate)
    result = open_payload(der, [pki.kpr.encryption], max_inflated=100_000)
    assert result.content is None
    assert rule_ids(result.findings) == ["SEC-GZIP-TOO-LARGE"]


def test_payload_wrong_recipient(pki: DevPki) -> None:
    der = encrypt_enveloped(CONTENT, pki.municipality.encryption.certificate)
    result = open_payload(der, [pki.kpr.encryption])
    assert rule_ids(result.findings) == ["SEC-CMS-NO-RECIPIENT"]


def test_signer_certificate_serialises(pki: DevPki) -> None:
    """The signer comes back as a usable certificate object (for the certificate checks)."""
    result = verify_signed_data(sign_data(CONTENT, pki.municipality.signing))
    assert result.signer is not None
    assert result.signer.public_bytes(serialization.Encoding.DER)
