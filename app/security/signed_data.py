"""CMS SignedData: signing (SHA-256 with RSA PKCS#1 v1.5, signed attributes) and verification of
sign-then-encrypt payloads.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from app.core.findings import Finding, Rule
from app.security import rules
from app.security.cms_der import _finding, _load_content_info
from app.security.enveloped import _matches
from app.security.keys import KeyPair, describe_certificate, load_der_certificate

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

# The detail of a SignedData without its signer's certificate (Helsenorge's transport answers it
# with `transport:missing-certificate`, app/amqp/core_adapter.py).
NO_SIGNER_CERTIFICATE = "Den signerte fagmeldingen mangler signerers sertifikat."


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedContent:
    """SignedData verified: `content` is the signed bytes, `signer` the signing certificate
    (also set when the signature failed but the certificate could be read)."""

    content: bytes | None
    findings: tuple[Finding, ...]
    signer: x509.Certificate | None = None


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
        return _bad_signed(rules.MSG_SIG_MALFORMED, NO_SIGNER_CERTIFICATE)
    digest_name = _signature_digest(read.signer_info, cert)
    if isinstance(digest_name, SignedContent):
        return digest_name
    covered = _signed_bytes(read, digest_name, cert)
    if isinstance(covered, SignedContent):
        return covered
    failed = _verify_rsa(cert, read.signer_info["signature"].native, covered, digest_name)
    if failed is not None:
        return failed
    return SignedContent(content=read.content, findings=(), signer=cert)


@dataclass(frozen=True, slots=True)
class _SignedParts:
    signed: asn1_cms.SignedData
    content: bytes
    signer_info: asn1_cms.SignerInfo


def _bad_signed(rule: Rule, detail: str, signer: x509.Certificate | None = None) -> SignedContent:
    return SignedContent(
        content=None, findings=(_finding(rule, detail, "CMS SignedData"),), signer=signer
    )


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
