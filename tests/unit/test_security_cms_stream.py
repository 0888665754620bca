"""Decryption and gunzip in chunks into a spooled file (cms.open_payload_spooled, Gunzip,
decrypt_enveloped_to) answer exactly as the in-memory path (open_payload, inflate)."""

from __future__ import annotations

import gzip
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.dev.devpki import DevPki, dev_pki
from app.security import cms
from app.security.cms import (
    CHUNK_SIZE,
    ContentCipher,
    Gunzip,
    decrypt_enveloped,
    decrypt_enveloped_to,
    encrypt_enveloped,
    inflate,
    open_payload,
    open_payload_spooled,
    sign_data,
)
from tests.budgets import examples
from tests.unit.test_security_cms import CONTENT, NOW, legacy_enveloped

BIG = os.urandom(CHUNK_SIZE // 2) * 5 + b"tail"  # several chunks, not a multiple of a block


@pytest.fixture(scope="session")
def pki() -> DevPki:
    return dev_pki(NOW)


def _same(der: bytes, pki: DevPki, max_inflated: int = cms.DEFAULT_MAX_INFLATED) -> None:
    keys = [pki.kpr.encryption]
    whole = open_payload(der, keys, max_inflated=max_inflated)
    spooled = open_payload_spooled(der, keys, max_inflated=max_inflated, spool_max_size=4096)
    content = spooled.content.read() if spooled.content is not None else None
    if spooled.content is not None:
        spooled.content.close()
    assert content == whole.content
    assert spooled.size == (len(content) if content is not None else 0)
    assert spooled.findings == whole.findings
    assert (spooled.recipient, spooled.cipher, spooled.signer) == (
        whole.recipient,
        whole.cipher,
        whole.signer,
    )
    assert (spooled.cms_signed, spooled.compressed) == (whole.cms_signed, whole.compressed)


def _corrupt_last_byte(der: bytes) -> bytes:
    return der[:-1] + bytes([der[-1] ^ 0xFF])


PAYLOADS = {
    "plain": lambda p: encrypt_enveloped(CONTENT, p.kpr.encryption.certificate),
    "plain-big": lambda p: encrypt_enveloped(BIG, p.kpr.encryption.certificate),
    "empty": lambda p: encrypt_enveloped(b"", p.kpr.encryption.certificate),
    "one-byte-gzip-magic": lambda p: encrypt_enveloped(b"\x1f", p.kpr.encryption.certificate),
    "gzip": lambda p: encrypt_enveloped(gzip.compress(CONTENT), p.kpr.encryption.certificate),
    "gzip-big": lambda p: encrypt_enveloped(gzip.compress(BIG), p.kpr.encryption.certificate),
    "gzip-two-members": lambda p: encrypt_enveloped(
        gzip.compress(BIG) + gzip.compress(CONTENT), p.kpr.encryption.certificate
    ),
    "gzip-zero-padding": lambda p: encrypt_enveloped(
        gzip.compress(CONTENT) + b"\0" * 700, p.kpr.encryption.certificate
    ),
    "gzip-trailing-garbage": lambda p: encrypt_enveloped(
        gzip.compress(CONTENT) + b"\0\0junk", p.kpr.encryption.certificate
    ),
    "gzip-truncated": lambda p: encrypt_enveloped(
        gzip.compress(BIG)[:-100], p.kpr.encryption.certificate
    ),
    "gzip-corrupt": lambda p: encrypt_enveloped(
        b"\x1f\x8bnot really gzip", p.kpr.encryption.certificate
    ),
    "sign-then-gzip-then-encrypt": lambda p: encrypt_enveloped(
        sign_data(gzip.compress(CONTENT), p.municipality.signing), p.kpr.encryption.certificate
    ),
    "gzip-of-signed": lambda p: encrypt_enveloped(
        gzip.compress(sign_data(CONTENT, p.municipality.signing)), p.kpr.encryption.certificate
    ),
    "signed-tampered": lambda p: encrypt_enveloped(
        sign_data(CONTENT, p.municipality.signing).replace(b"MsgHead", b"MsgHexd", 1),
        p.kpr.encryption.certificate,
    ),
    "signed-bomb": lambda p: encrypt_enveloped(
        sign_data(gzip.compress(b"\0" * 3_000_000), p.municipality.signing),
        p.kpr.encryption.certificate,
    ),
    "bomb": lambda p: encrypt_enveloped(
        gzip.compress(b"\0" * 3_000_000), p.kpr.encryption.certificate
    ),
    "wrong-recipient": lambda p: encrypt_enveloped(CONTENT, p.municipality.encryption.certificate),
    "corrupt-ciphertext": lambda p: _corrupt_last_byte(
        encrypt_enveloped(BIG, p.kpr.encryption.certificate)
    ),
    "3des": lambda p: legacy_enveloped(
        gzip.compress(BIG), [p.kpr.encryption.certificate], ContentCipher.DES3_CBC
    ),
    "aes128": lambda p: legacy_enveloped(
        CONTENT, [p.kpr.encryption.certificate], ContentCipher.AES128_CBC
    ),
    "not-cms": lambda p: b"not cms at all",
    "signed-not-enveloped": lambda p: sign_data(CONTENT, p.kpr.signing),
}


@pytest.mark.parametrize("make", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_spooled_payload_answers_as_the_in_memory_one(pki: DevPki, make: object) -> None:
    _same(make(pki), pki, max_inflated=1_000_000)  # type: ignore[operator]


def test_spooled_payload_of_a_big_message_rolls_to_disk_and_reads_back(pki: DevPki) -> None:
    der = encrypt_enveloped(gzip.compress(BIG), pki.kpr.encryption.certificate)
    spooled = open_payload_spooled(der, [pki.kpr.encryption], spool_max_size=1024)
    assert spooled.content is not None
    assert spooled.findings == ()
    assert spooled.size == len(BIG)
    assert spooled.content.read() == BIG
    spooled.content.close()


def test_signed_data_over_16_mb_is_recognised_and_verified(pki: DevPki) -> None:
    """A SignedData of more than 16 MB writes its length in 4 bytes: its OID begins at byte
    6 (a 100 000-notification MsgHead over AMQP is 55 MB)."""
    content = b"<MsgHead/>" + b" " * (17 * 1024 * 1024)
    der = encrypt_enveloped(
        sign_data(content, pki.municipality.signing), pki.kpr.encryption.certificate
    )
    spooled = open_payload_spooled(der, [pki.kpr.encryption], max_inflated=len(content) + 1)
    assert spooled.findings == ()
    assert spooled.cms_signed
    assert spooled.signer == pki.municipality.signing.certificate
    assert spooled.content is not None
    assert spooled.content.read(10) == b"<MsgHead/>"
    spooled.content.close()


def test_decryption_is_written_in_chunks(pki: DevPki) -> None:
    der = encrypt_enveloped(BIG, pki.kpr.encryption.certificate)
    chunks: list[bytes] = []
    done = decrypt_enveloped_to(der, [pki.kpr.encryption], chunks.append)
    assert done.ok
    assert len(chunks) > 2
    assert max(len(c) for c in chunks) <= CHUNK_SIZE
    assert b"".join(chunks) == BIG == decrypt_enveloped(der, [pki.kpr.encryption]).content


_GZ = st.one_of(
    st.binary(max_size=3000).map(gzip.compress),
    st.tuples(st.binary(max_size=500), st.binary(max_size=500)).map(
        lambda t: gzip.compress(t[0]) + gzip.compress(t[1])
    ),
    st.tuples(st.binary(max_size=800), st.binary(max_size=40)).map(
        lambda t: gzip.compress(t[0]) + t[1]
    ),
    st.tuples(st.binary(max_size=800), st.integers(0, 40)).map(
        lambda t: gzip.compress(t[0])[: max(2, len(gzip.compress(t[0])) - t[1])]
    ),
    st.binary(max_size=200).map(lambda b: b"\x1f\x8b" + b),
)


@settings(max_examples=examples(300), deadline=None)
@given(data=_GZ, cap=st.integers(0, 4000), cuts=st.lists(st.integers(0, 4000), max_size=6))
def test_gunzip_in_any_chunks_answers_as_inflate(data: bytes, cap: int, cuts: list[int]) -> None:
    whole = inflate(data, max_size=cap)
    out = bytearray()
    gunzip = Gunzip(out.extend, cap)
    at = 0
    for cut in sorted(c for c in cuts if c <= len(data)):
        gunzip.feed(data[at:cut])
        at = cut
    gunzip.feed(data[at:])
    findings = gunzip.finish()
    assert findings == whole.findings
    if whole.content is not None:
        assert bytes(out) == whole.content
    assert len(out) <= cap


@settings(max_examples=examples(50), deadline=None)
@given(st.binary(max_size=300))
def test_garbage_is_answered_alike(data: bytes) -> None:
    _same(data, dev_pki(NOW))
