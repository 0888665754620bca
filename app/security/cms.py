"""CMS (PKCS#7) for the payload: EnvelopedData decryption/encryption and SignedData.

Decryption parses the structure with asn1crypto and does the cryptography with `cryptography`,
because `pkcs7_decrypt_der` takes one key, no 3DES, and cannot pick among several keys. We keep
several decryption keys live (certificate rollover) and choose by the recipient's
IssuerAndSerialNumber (or SubjectKeyIdentifier). Encryption for our own replies uses
`cryptography`'s PKCS7EnvelopeBuilder (AES-256-CBC, RSA PKCS#1 v1.5).

The decrypted content may be gzip (magic 1f 8b): it is inflated stream-wise with a cap, so a
zip bomb becomes a finding instead of an outage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import IO

from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7

from app.core.findings import Finding, Rule
from app.security import rules
from app.security.keys import KeyPair, describe_certificate, load_der_certificate, serial_hex

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_INFLATED = 200 * 1024 * 1024  # 50 MB packed (NHN's cap) at a generous 4x ratio


class ContentCipher(StrEnum):
    AES256_CBC = "aes256_cbc"
    AES128_CBC = "aes128_cbc"
    DES3_CBC = "tripledes_3key"


_KEY_LENGTHS = {
    ContentCipher.AES256_CBC: 32,
    ContentCipher.AES128_CBC: 16,
    ContentCipher.DES3_CBC: 24,
}

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True, slots=True)
class Decrypted:
    """EnvelopedData opened: `content` is None when a finding says why not. `recipient` is the
    certificate of ours it was encrypted to."""

    content: bytes | None
    findings: tuple[Finding, ...]
    recipient: x509.Certificate | None = None
    cipher: ContentCipher | None = None


@dataclass(frozen=True, slots=True)
class SignedContent:
    """SignedData verified: `content` is the signed bytes, `signer` the signing certificate
    (also set when the signature failed but the certificate could be read)."""

    content: bytes | None
    findings: tuple[Finding, ...]
    signer: x509.Certificate | None = None


@dataclass(frozen=True, slots=True)
class Inflated:
    content: bytes | None
    findings: tuple[Finding, ...]
    compressed: bool


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


def _finding(rule: Rule, detail: str, location: str = "CMS") -> Finding:
    return Finding(rule=rule, location=location, detail=detail)


_PEM_RE = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----(.*?)-----END [A-Z0-9 ]+-----", re.S)


def to_der(data: bytes) -> bytes:
    """DER from DER, PEM (PKCS7/CMS armour) or bare base64; raises ValueError otherwise."""
    if data[:1] == b"\x30":
        return data  # never strip DER: its last bytes may well be whitespace values
    stripped = data.strip()
    match = _PEM_RE.search(stripped)
    body = match.group(1) if match else stripped
    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError("neither DER, PEM nor base64") from exc
    if der[:1] != b"\x30":
        raise ValueError("not a DER structure")
    return der


def _load_content_info(data: bytes, expected: str) -> asn1_cms.ContentInfo:
    der = to_der(data)
    info = asn1_cms.ContentInfo.load(der, strict=True)
    content_type = info["content_type"].native
    if content_type != expected:
        raise ValueError(f"content type {content_type}, expected {expected}")
    info["content"].native  # noqa: B018 - force the lazy parse so errors surface here
    return info


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
    return Decrypted(bytes(out) if done.ok else None, done.findings, done.recipient, done.cipher)


@dataclass(frozen=True, slots=True)
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
                False,
                (
                    _finding(
                        rules.CMS_ALGORITHM,
                        "Vedlegget er CMS AuthEnvelopedData (AES-GCM), som ikke støttes; "
                        "krypter som EnvelopedData med AES-256-CBC.",
                    ),
                ),
            )
        return Decryption(False, (_finding(rules.CMS_MALFORMED, _malformed_detail(exc)),))
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
                False,
                (
                    _finding(
                        rules.CMS_ALGORITHM,
                        f"Nøkkeltransport '{kea}' støttes ikke; bruk RSA PKCS#1 v1.5.",
                    ),
                ),
                pair.certificate,
            )
        return _decrypt_content(env, ktri["encrypted_key"].native, pair, write)
    ours = "; ".join(describe_certificate(p.certificate) for p in key_pairs) or "ingen"
    return Decryption(
        False,
        (
            _finding(
                rules.CMS_NO_RECIPIENT,
                "Vedlegget er kryptert til "
                + ("; ".join(recipients) or "ingen mottakere")
                + f", men mottakerens krypteringssertifikat er {ours}. Krypter til "
                "mottakerens gjeldende krypteringssertifikat fra Adresseregisteret.",
            ),
        ),
    )


def _malformed_detail(exc: Exception) -> str:
    return f"Vedlegget kan ikke leses som CMS EnvelopedData ({exc})."


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
            False,
            (
                _finding(
                    rules.CMS_ALGORITHM,
                    f"Innholdet er kryptert med '{alg['algorithm'].native}', som ikke støttes; "
                    "bruk AES-256-CBC.",
                ),
            ),
            pair.certificate,
        )
    failure = Decryption(
        False,
        (
            _finding(
                rules.CMS_DECRYPT,
                f"Vedlegget kunne ikke dekrypteres med {describe_certificate(pair.certificate)}: "
                "nøkkelen eller innholdet er ødelagt.",
            ),
        ),
        pair.certificate,
        cipher,
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
    return Decryption(True, (), pair.certificate, cipher)


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


def inflate(data: bytes, max_size: int = DEFAULT_MAX_INFLATED) -> Inflated:
    """Gunzip `data` when it starts with 1f 8b (stream-wise, never more than `max_size`
    bytes); pass anything else through unchanged."""
    if not data.startswith(GZIP_MAGIC):
        return Inflated(data, (), compressed=False)
    out = bytearray()
    gunzip = Gunzip(out.extend, max_size)
    gunzip.feed(data)
    findings = gunzip.finish()
    return Inflated(None if findings else bytes(out), findings, compressed=True)


class Gunzip:
    """Gunzip fed in chunks, the output handed to `write`, never more than `max_size` bytes in
    all; several members in a row are one stream, zero bytes after the last are tolerated
    (as some tools pad). `finish` gives the findings (`inflate`'s): too large, or corrupt,
    truncated or followed by something else. After a finding, further input is ignored."""

    def __init__(self, write: Write, max_size: int = DEFAULT_MAX_INFLATED) -> None:
        self._write = write
        self._max = max_size
        self.size = 0
        self._decomp = zlib.decompressobj(wbits=31)
        self._between = False  # a member ended: what follows is another one or zero padding
        self._tail = b""  # the first bytes after a member (to tell the magic from padding)
        self._padding = False  # only zero bytes may follow
        self._finding: Finding | None = None

    def feed(self, data: bytes) -> None:
        if self._finding is not None or not data:
            return
        try:
            self._feed(data)
        except zlib.error as exc:
            self._finding = _gzip_corrupt(exc)

    def finish(self) -> tuple[Finding, ...]:
        if self._finding is None:
            try:
                if not self._between:
                    raise zlib.error("truncated gzip data")
                if self._tail.strip(b"\x00"):
                    raise zlib.error("trailing garbage after gzip data")
            except zlib.error as exc:
                self._finding = _gzip_corrupt(exc)
        return () if self._finding is None else (self._finding,)

    def _feed(self, data: bytes) -> None:
        pending = data
        while pending:
            if self._between:
                pending = self._after_member(pending)
                continue
            out = self._decomp.decompress(pending, self._max + 1 - self.size)
            self.size += len(out)
            if self.size > self._max:
                self._finding = _gzip_too_large(self._max)
                return
            if out:
                self._write(out)
            pending = self._decomp.unconsumed_tail
            if self._decomp.eof:
                self._between = True
                pending = self._decomp.unused_data

    def _after_member(self, data: bytes) -> bytes:
        """What follows a member: a further member (returned, to be inflated), else zero bytes
        to the end (else trailing garbage)."""
        if self._padding:
            if data.strip(b"\x00"):
                raise zlib.error("trailing garbage after gzip data")
            return b""
        self._tail += data
        if len(self._tail) < len(GZIP_MAGIC):
            return b""
        rest, self._tail = self._tail, b""
        if rest.startswith(GZIP_MAGIC):
            self._decomp = zlib.decompressobj(wbits=31)
            self._between = False
            return rest
        if rest.strip(b"\x00"):
            raise zlib.error("trailing garbage after gzip data")
        self._padding = True
        return b""


def _gzip_too_large(max_size: int) -> Finding:
    return _finding(
        rules.GZIP_TOO_LARGE,
        f"Innholdet er gzip-komprimert og blir større enn {max_size} byte når det pakkes ut.",
        "gzip",
    )


def _gzip_corrupt(exc: zlib.error) -> Finding:
    return _finding(
        rules.GZIP_CORRUPT,
        f"Innholdet starter som gzip, men kan ikke pakkes ut ({exc}).",
        "gzip",
    )


# --- SignedData ------------------------------------------------------------------------------


def is_signed_data(data: bytes) -> bool:
    """True when `data` is a DER CMS ContentInfo of type SignedData."""
    if data[:1] != b"\x30":
        return False
    try:
        info = asn1_cms.ContentInfo.load(data, strict=True)
        return bool(info["content_type"].native == "signed_data")
    except ValueError:
        return False


def sign_data(content: bytes, key_pair: KeyPair) -> bytes:
    """CMS SignedData (DER) with the content attached, SHA-256 with RSA PKCS#1 v1.5, signed
    attributes, the signer's certificate included."""
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(key_pair.certificate, key_pair.private_key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


def _signer_cert(
    signed: asn1_cms.SignedData, sid: asn1_cms.SignerIdentifier
) -> x509.Certificate | SignedContent | None:
    """The signer's certificate among those carried; a finding when one of them cannot be
    read (and none that can is the signer's)."""
    unreadable: str | None = None
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue
        try:
            cert = load_der_certificate(choice.chosen.dump())
        except ValueError as exc:
            unreadable = f" ({exc})" if exc.__cause__ is not None else ""
            continue
        if _matches(sid, cert):
            return cert
    if unreadable is not None:
        return _bad_signed(
            rules.MSG_SIG_MALFORMED,
            f"Et sertifikat i den signerte fagmeldingen kan ikke leses{unreadable}.",
        )
    return None


def verify_signed_data(data: bytes) -> SignedContent:
    """Verify CMS SignedData with attached content and one signer (RSA PKCS#1 v1.5; SHA-1 or
    SHA-2). Findings map to AppRec S01; certificate checks are certificates.check_signer's.
    The steps: read the structure, find the signer's certificate, check the algorithms, work
    out the bytes the signature covers (the signed attributes, whose digest must match the
    content), verify the RSA signature."""
    read = _read_signed_data(data)
    if isinstance(read, SignedContent):
        return read
    cert = _signer_cert(read.signed, read.signer_info["sid"])
    if isinstance(cert, SignedContent):
        return cert
    if cert is None:
        return _bad_signed(
            rules.MSG_SIG_MALFORMED, "Den signerte fagmeldingen mangler signerers sertifikat."
        )
    digest_name = _signature_digest(read.signer_info, cert)
    if isinstance(digest_name, SignedContent):
        return digest_name
    covered = _signed_bytes(read, digest_name, cert)
    if isinstance(covered, SignedContent):
        return covered
    failed = _verify_rsa(cert, read.signer_info["signature"].native, covered, digest_name)
    if failed is not None:
        return failed
    return SignedContent(read.content, (), cert)


@dataclass(frozen=True, slots=True)
class _SignedParts:
    signed: asn1_cms.SignedData
    content: bytes
    signer_info: asn1_cms.SignerInfo


def _bad_signed(rule: Rule, detail: str, signer: x509.Certificate | None = None) -> SignedContent:
    return SignedContent(None, (_finding(rule, detail, "CMS SignedData"),), signer)


def _read_signed_data(data: bytes) -> _SignedParts | SignedContent:
    """The structure: attached content and exactly one signer."""
    try:
        info = _load_content_info(data, "signed_data")
        signed = info["content"]
        content = signed["encap_content_info"]["content"].native
        signer_infos = list(signed["signer_infos"])
    except ValueError as exc:
        return _bad_signed(
            rules.MSG_SIG_MALFORMED, f"Den signerte fagmeldingen kan ikke leses ({exc})."
        )
    if not isinstance(content, bytes):
        return _bad_signed(rules.MSG_SIG_MALFORMED, "Den signerte fagmeldingen mangler innhold.")
    if len(signer_infos) != 1:
        return _bad_signed(
            rules.MSG_SIG_MALFORMED,
            f"Den signerte fagmeldingen har {len(signer_infos)} signaturer; det skal være én.",
        )
    return _SignedParts(signed, content, signer_infos[0])


def _signature_digest(
    signer_info: asn1_cms.SignerInfo, cert: x509.Certificate
) -> str | SignedContent:
    """The digest's name, when digest and signature algorithm are ones we take."""
    digest_name: str = signer_info["digest_algorithm"]["algorithm"].native
    sig_algo = signer_info["signature_algorithm"]
    if digest_name not in _HASHES or sig_algo.signature_algo != "rsassa_pkcs1v15":
        return _bad_signed(
            rules.MSG_SIG_ALGORITHM,
            f"Fagmeldingen er signert med '{sig_algo['algorithm'].native}'/'{digest_name}', "
            "som er svakt eller ikke støttes; bruk sha256WithRSAEncryption.",
            cert,
        )
    return digest_name


def _signed_bytes(
    read: _SignedParts, digest_name: str, cert: x509.Certificate
) -> bytes | SignedContent:
    """What the signature covers: the content itself, or the signed attributes once their
    message digest and content type match the content."""
    signed_attrs = read.signer_info["signed_attrs"]
    if not len(signed_attrs):
        return read.content
    attrs = {a["type"].native: a["values"][0].native for a in signed_attrs}
    digest = hashlib.new(digest_name, read.content).digest()
    if not isinstance(attrs.get("message_digest"), bytes) or not hmac.compare_digest(
        attrs["message_digest"], digest
    ):
        return _bad_signed(
            rules.MSG_SIG_INVALID,
            f"Innholdet er endret etter signering ({describe_certificate(cert)}).",
            cert,
        )
    if attrs.get("content_type") != read.signed["encap_content_info"]["content_type"].native:
        return _bad_signed(rules.MSG_SIG_INVALID, "Signert innholdstype stemmer ikke.", cert)
    # The signature covers the DER of the attributes as a SET OF (tag 0x31), not [0].
    dumped: bytes = signed_attrs.dump()
    return b"\x31" + dumped[1:]


def _verify_rsa(
    cert: x509.Certificate, signature: bytes, covered: bytes, digest_name: str
) -> SignedContent | None:
    """None when the certificate's RSA key verifies the signature over `covered`."""
    public_key = cert.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        return _bad_signed(rules.MSG_SIG_ALGORITHM, "Bare RSA-nøkler støttes.", cert)
    try:
        public_key.verify(signature, covered, padding.PKCS1v15(), _HASHES[digest_name]())
    except InvalidSignature:
        return _bad_signed(
            rules.MSG_SIG_INVALID,
            f"Signaturen på fagmeldingen kan ikke verifiseres ({describe_certificate(cert)}).",
            cert,
        )
    return None


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
    head = spool.read(16)
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
