"""CMS EnvelopedData: decryption with whichever of our live keys it was encrypted to (chosen by
IssuerAndSerialNumber or SubjectKeyIdentifier; AES-256/128-CBC or 3DES-CBC, streamed in chunks),
and encryption of our own replies (AES-256-CBC, RSA PKCS#1 v1.5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7

from app.core.findings import Finding
from app.security import rules
from app.security.cms_der import _finding, _load_content_info, _malformed_detail
from app.security.keys import KeyPair, describe_certificate, serial_hex


class ContentCipher(StrEnum):
    AES256_CBC = "aes256_cbc"
    AES128_CBC = "aes128_cbc"
    DES3_CBC = "tripledes_3key"


_KEY_LENGTHS = {
    ContentCipher.AES256_CBC: 32,
    ContentCipher.AES128_CBC: 16,
    ContentCipher.DES3_CBC: 24,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Decrypted:
    """EnvelopedData opened: `content` is None when a finding says why not. `recipient` is the
    certificate of ours it was encrypted to."""

    content: bytes | None
    findings: tuple[Finding, ...]
    recipient: x509.Certificate | None = None
    cipher: ContentCipher | None = None


def _asn1_name(name: x509.Name) -> asn1_x509.Name:
    return asn1_x509.Name.load(name.public_bytes())


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _matches(rid: asn1_cms.RecipientIdentifier, cert: x509.Certificate) -> bool:
    if rid.name == "issuer_and_serial_number":
        ias = rid.chosen
        return bool(
            ias["serial_number"].native == cert.serial_number
            and ias["issuer"] == _asn1_name(cert.issuer)
        )
    if rid.name == "subject_key_identifier":
        return bool(rid.chosen.native == _ski(cert))
    return False


def _describe_rid(rid: asn1_cms.RecipientIdentifier) -> str:
    if rid.name == "issuer_and_serial_number":
        ias = rid.chosen
        issuer = ias["issuer"].human_friendly
        return f"utsteder '{issuer}', serienummer {serial_hex(ias['serial_number'].native)}"
    return f"nøkkel-id {rid.chosen.native.hex()}"


def _content_cipher(key: bytes, iv: bytes, cipher: ContentCipher) -> Cipher[modes.CBC]:
    if cipher is ContentCipher.DES3_CBC:
        return Cipher(TripleDES(key), modes.CBC(iv))
    return Cipher(algorithms.AES(key), modes.CBC(iv))


def decrypt_enveloped(data: bytes, key_pairs: Sequence[KeyPair]) -> Decrypted:
    """Decrypt CMS EnvelopedData (DER, PEM or base64) with whichever of `key_pairs` it was
    encrypted to. Key transport RSA PKCS#1 v1.5; AES-256-CBC, AES-128-CBC or 3DES-CBC."""
    out = bytearray()
    done = _decrypt_enveloped(data, key_pairs, out.extend)
    return Decrypted(
        content=bytes(out) if done.ok else None,
        findings=done.findings,
        recipient=done.recipient,
        cipher=done.cipher,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decryption:
    """EnvelopedData decrypted into a writer (`decrypt_enveloped_to`): `ok` when every byte
    written is the content; otherwise the findings say why and what was written is to be
    thrown away."""

    ok: bool
    findings: tuple[Finding, ...]
    recipient: x509.Certificate | None = None
    cipher: ContentCipher | None = None


Write = Callable[[bytes], object]


def decrypt_enveloped_to(data: bytes, key_pairs: Sequence[KeyPair], write: Write) -> Decryption:
    """`decrypt_enveloped`, with the plaintext handed to `write` in chunks of about
    `CHUNK_SIZE` bytes as it is decrypted (never held whole); the same findings."""
    return _decrypt_enveloped(data, key_pairs, write)


def _decrypt_enveloped(data: bytes, key_pairs: Sequence[KeyPair], write: Write) -> Decryption:
    try:
        info = _load_content_info(data, "enveloped_data")
    except ValueError as exc:
        if "authenticated_enveloped_data" in str(exc):
            # AES-GCM comes as AuthEnvelopedData: readable CMS, an algorithm we do not take.
            return Decryption(
                ok=False,
                findings=(
                    _finding(
                        rules.CMS_ALGORITHM,
                        "Vedlegget er CMS AuthEnvelopedData (AES-GCM), som ikke støttes; "
                        "krypter som EnvelopedData med AES-256-CBC.",
                    ),
                ),
            )
        malformed = _finding(rules.CMS_MALFORMED, _malformed_detail(exc))
        return Decryption(ok=False, findings=(malformed,))
    env = info["content"]
    recipients: list[str] = []
    for ri in env["recipient_infos"]:
        if ri.name != "ktri":
            recipients.append(f"mottakertype {ri.name}")
            continue
        ktri = ri.chosen
        rid = ktri["rid"]
        recipients.append(_describe_rid(rid))
        pair = next((p for p in key_pairs if _matches(rid, p.certificate)), None)
        if pair is None:
            continue
        kea = ktri["key_encryption_algorithm"]["algorithm"].native
        if kea not in ("rsaes_pkcs1v15", "rsa"):
            return Decryption(
                ok=False,
                findings=(
                    _finding(
                        rules.CMS_ALGORITHM,
                        f"Nøkkeltransport '{kea}' støttes ikke; bruk RSA PKCS#1 v1.5.",
                    ),
                ),
                recipient=pair.certificate,
            )
        return _decrypt_content(env, ktri["encrypted_key"].native, pair, write)
    ours = "; ".join(describe_certificate(p.certificate) for p in key_pairs) or "ingen"
    return Decryption(
        ok=False,
        findings=(
            _finding(
                rules.CMS_NO_RECIPIENT,
                "Vedlegget er kryptert til "
                + ("; ".join(recipients) or "ingen mottakere")
                + f", men mottakerens krypteringssertifikat er {ours}. Krypter til "
                "mottakerens gjeldende krypteringssertifikat fra Adresseregisteret.",
            ),
        ),
    )


def _decrypt_content(
    env: asn1_cms.EnvelopedData, encrypted_key: bytes, pair: KeyPair, write: Write
) -> Decryption:
    """The content of EnvelopedData, decrypted in chunks into `write`: which cipher, the
    content key, then the blocks."""
    eci = env["encrypted_content_info"]
    alg = eci["content_encryption_algorithm"]
    cipher = _cipher_of(alg["algorithm"].native)
    if cipher is None:
        return Decryption(
            ok=False,
            findings=(
                _finding(
                    rules.CMS_ALGORITHM,
                    f"Innholdet er kryptert med '{alg['algorithm'].native}', som ikke støttes; "
                    "bruk AES-256-CBC.",
                ),
            ),
            recipient=pair.certificate,
        )
    failure = Decryption(
        ok=False,
        findings=(
            _finding(
                rules.CMS_DECRYPT,
                f"Vedlegget kunne ikke dekrypteres med {describe_certificate(pair.certificate)}: "
                "nøkkelen eller innholdet er ødelagt.",
            ),
        ),
        recipient=pair.certificate,
        cipher=cipher,
    )
    encrypted = eci["encrypted_content"].native
    if not isinstance(encrypted, bytes):
        return failure
    try:
        key = pair.private_key.decrypt(encrypted_key, padding.PKCS1v15())
        iv = alg.encryption_iv
        if len(key) != _KEY_LENGTHS[cipher] or not isinstance(iv, bytes):
            return failure
        _decrypt_blocks(encrypted, _content_cipher(key, iv, cipher), cipher, write)
    except ValueError:
        return failure
    return Decryption(ok=True, findings=(), recipient=pair.certificate, cipher=cipher)


def _cipher_of(name: str) -> ContentCipher | None:
    try:
        return ContentCipher(name)
    except ValueError:
        return None


CHUNK_SIZE = 1024 * 1024


def _decrypt_blocks(
    encrypted: bytes, algorithm: Cipher[modes.CBC], cipher: ContentCipher, write: Write
) -> None:
    """CBC-decrypt and unpad chunk by chunk (the unpadder holds back the last block until the
    end); raises ValueError for a bad length or padding, after having written the rest."""
    decryptor = algorithm.decryptor()
    unpadder = sym_padding.PKCS7(64 if cipher is ContentCipher.DES3_CBC else 128).unpadder()
    view = memoryview(encrypted)
    for at in range(0, len(view), CHUNK_SIZE):
        if plain := unpadder.update(decryptor.update(view[at : at + CHUNK_SIZE])):
            write(plain)
    if last := unpadder.update(decryptor.finalize()) + unpadder.finalize():
        write(last)


def encrypt_enveloped(content: bytes, recipient: x509.Certificate) -> bytes:
    """CMS EnvelopedData (DER) of `content` to `recipient`: RSA PKCS#1 v1.5, AES-256-CBC."""
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(content)
        .add_recipient(recipient)
        .set_content_encryption_algorithm(algorithms.AES256)
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
