"""CMS (PKCS#7) for the payload: a payload part opened whole (decrypted, signature verified,
gunzipped), in memory or spooled. The steps live in `enveloped` (EnvelopedData), `signed_data`
(SignedData), `gunzip` and `cms_der`; this module re-exports what callers use.

Decryption parses the structure with asn1crypto and does the cryptography with `cryptography`,
because `pkcs7_decrypt_der` takes one key, no 3DES, and cannot pick among several keys. We keep
several decryption keys live (certificate rollover) and choose by the recipient's
IssuerAndSerialNumber (or SubjectKeyIdentifier). Encryption for our own replies uses
`cryptography`'s PKCS7EnvelopeBuilder (AES-256-CBC, RSA PKCS#1 v1.5).

The decrypted content may be gzip (magic 1f 8b): it is inflated stream-wise with a cap, so a
zip bomb becomes a finding instead of an outage.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from cryptography import x509

from app.core.findings import Finding
from app.security.cms_der import to_der
from app.security.enveloped import (
    CHUNK_SIZE,
    ContentCipher,
    Decrypted,
    Decryption,
    Write,
    decrypt_enveloped,
    decrypt_enveloped_to,
    encrypt_enveloped,
)
from app.security.gunzip import DEFAULT_MAX_INFLATED, GZIP_MAGIC, Gunzip, Inflated, inflate
from app.security.keys import KeyPair
from app.security.signed_data import SignedContent, is_signed_data, sign_data, verify_signed_data

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_MAX_INFLATED",
    "GZIP_MAGIC",
    "SPOOL_MAX_SIZE",
    "ContentCipher",
    "Decrypted",
    "Decryption",
    "Gunzip",
    "Inflated",
    "Payload",
    "SignedContent",
    "SpooledPayload",
    "Write",
    "decrypt_enveloped",
    "decrypt_enveloped_to",
    "encrypt_enveloped",
    "inflate",
    "is_signed_data",
    "new_spool",
    "open_payload",
    "open_payload_spooled",
    "sign_data",
    "to_der",
    "verify_signed_data",
]


@dataclass(frozen=True, slots=True)
class Payload:
    """A payload part fully opened: decrypted, signature (if CMS SignedData) verified, gunzipped.
    `signer` is set only for sign-then-encrypt payloads; an enveloped MsgHead ds:Signature is
    verified separately (xmldsig.verify_document)."""

    content: bytes | None
    findings: tuple[Finding, ...]
    recipient: x509.Certificate | None
    cipher: ContentCipher | None
    signer: x509.Certificate | None
    cms_signed: bool
    compressed: bool


def open_payload(
    data: bytes, key_pairs: Sequence[KeyPair], *, max_inflated: int = DEFAULT_MAX_INFLATED
) -> Payload:
    """Decrypt an ebXML payload part, gunzip it if needed, and unwrap and verify CMS
    SignedData if it is sign-then-encrypt (gzip accepted inside or outside the signature)."""
    decrypted = decrypt_enveloped(data, key_pairs)
    if decrypted.content is None:
        return Payload(
            None, decrypted.findings, decrypted.recipient, decrypted.cipher, None, False, False
        )
    inflated = inflate(decrypted.content, max_inflated)
    compressed = inflated.compressed
    if inflated.content is None:
        return Payload(
            None, inflated.findings, decrypted.recipient, decrypted.cipher, None, False, True
        )
    content = inflated.content
    signer: x509.Certificate | None = None
    cms_signed = is_signed_data(content)
    if cms_signed:
        verified = verify_signed_data(content)
        signer = verified.signer
        if verified.content is None:
            return Payload(
                None,
                verified.findings,
                decrypted.recipient,
                decrypted.cipher,
                signer,
                True,
                compressed,
            )
        inner = inflate(verified.content, max_inflated)
        compressed = compressed or inner.compressed
        if inner.content is None:
            return Payload(
                None,
                inner.findings,
                decrypted.recipient,
                decrypted.cipher,
                signer,
                True,
                compressed,
            )
        content = inner.content
    return Payload(
        content, (), decrypted.recipient, decrypted.cipher, signer, cms_signed, compressed
    )


# --- the payload opened into a spooled temporary file (issue 11) ------------------------------

SPOOL_MAX_SIZE = 8 * 1024 * 1024  # in memory up to this size, then a temporary file
# DER ContentInfo: SEQUENCE (tag, 1-5 length bytes), then the OID 1.2.840.113549.1.7.2
_SIGNED_DATA_OID = bytes.fromhex("06092a864886f70d010702")


def new_spool(max_size: int = SPOOL_MAX_SIZE) -> IO[bytes]:
    """A temporary binary file, kept in memory up to `max_size` bytes."""
    return tempfile.SpooledTemporaryFile(max_size=max_size, mode="w+b")


@dataclass(frozen=True, slots=True)
class SpooledPayload:
    """`Payload`, with the content in a spooled temporary file at position 0 (the caller
    closes it) instead of in memory; `size` its length in bytes."""

    content: IO[bytes] | None
    size: int
    findings: tuple[Finding, ...]
    recipient: x509.Certificate | None
    cipher: ContentCipher | None
    signer: x509.Certificate | None
    cms_signed: bool
    compressed: bool


class _Plain:
    """Where the decrypted bytes go: through `Gunzip` when they start with its magic, else
    as they are (as `inflate` does), into `write`."""

    def __init__(self, write: Write, max_inflated: int) -> None:
        self._write = write
        self._max = max_inflated
        self._head = b""
        self.gunzip: Gunzip | None = None
        self._decided = False
        self.size = 0

    def write(self, data: bytes) -> None:
        if not self._decided:
            self._head += data
            if len(self._head) < len(GZIP_MAGIC):
                return
            data, self._head = self._head, b""
            self._decide(data)
        self._pass(data)

    def finish(self) -> tuple[Finding, ...]:
        if not self._decided:
            data, self._head = self._head, b""
            self._decide(data)
            self._pass(data)
        return self.gunzip.finish() if self.gunzip is not None else ()

    def _decide(self, first: bytes) -> None:
        self._decided = True
        if first.startswith(GZIP_MAGIC):
            self.gunzip = Gunzip(self._counted, self._max)

    def _pass(self, data: bytes) -> None:
        if self.gunzip is not None:
            self.gunzip.feed(data)
        elif data:
            self._counted(data)

    def _counted(self, data: bytes) -> None:
        self.size += len(data)
        self._write(data)


def open_payload_spooled(
    data: bytes,
    key_pairs: Sequence[KeyPair],
    *,
    max_inflated: int = DEFAULT_MAX_INFLATED,
    spool_max_size: int = SPOOL_MAX_SIZE,
) -> SpooledPayload:
    """`open_payload` with the same findings, decrypting and gunzipping in chunks into a
    spooled temporary file: the plaintext is never held whole in memory (except a
    sign-then-encrypt payload, whose SignedData is read whole to verify it)."""
    spool = new_spool(spool_max_size)
    plain = _Plain(spool.write, max_inflated)
    decrypted = decrypt_enveloped_to(data, key_pairs, plain.write)
    if not decrypted.ok:
        spool.close()
        return SpooledPayload(
            None, 0, decrypted.findings, decrypted.recipient, decrypted.cipher, None, False, False
        )
    findings = plain.finish()
    compressed = plain.gunzip is not None
    if findings:
        spool.close()
        return SpooledPayload(
            None, 0, findings, decrypted.recipient, decrypted.cipher, None, False, compressed
        )
    spool.seek(0)
    head = spool.read(1 + 5 + len(_SIGNED_DATA_OID))  # over 16 MB the length takes 4 bytes
    spool.seek(0)
    if not (head[:1] == b"\x30" and _SIGNED_DATA_OID in head):
        return SpooledPayload(
            spool, plain.size, (), decrypted.recipient, decrypted.cipher, None, False, compressed
        )
    content = spool.read()
    spool.close()
    return _open_signed_spooled(
        content,
        decrypted,
        compressed=compressed,
        max_inflated=max_inflated,
        spool_max_size=spool_max_size,
    )


def _open_signed_spooled(
    content: bytes,
    decrypted: Decryption,
    *,
    compressed: bool,
    max_inflated: int,
    spool_max_size: int,
) -> SpooledPayload:
    """The decrypted content when it may be SignedData: verified and unwrapped, as
    `open_payload` does, the signed content gunzipped into a new spool."""
    spool = new_spool(spool_max_size)
    if not is_signed_data(content):
        spool.write(content)
        spool.seek(0)
        return SpooledPayload(
            spool, len(content), (), decrypted.recipient, decrypted.cipher, None, False, compressed
        )
    verified = verify_signed_data(content)
    if verified.content is None:
        spool.close()
        return SpooledPayload(
            None,
            0,
            verified.findings,
            decrypted.recipient,
            decrypted.cipher,
            verified.signer,
            True,
            compressed,
        )
    inner = _Plain(spool.write, max_inflated)
    inner.write(verified.content)
    findings = inner.finish()
    compressed = compressed or inner.gunzip is not None
    if findings:
        spool.close()
        return SpooledPayload(
            None,
            0,
            findings,
            decrypted.recipient,
            decrypted.cipher,
            verified.signer,
            True,
            compressed,
        )
    spool.seek(0)
    return SpooledPayload(
        spool,
        inner.size,
        (),
        decrypted.recipient,
        decrypted.cipher,
        verified.signer,
        True,
        compressed,
    )
