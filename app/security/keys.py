"""Key material shared by the security layer: a private key with its certificate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An RSA private key and the certificate of its public key."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate


def load_key_pair(key_pem: bytes, cert_pem: bytes, password: bytes | None = None) -> KeyPair:
    """Load a PEM private key and PEM certificate; refuse a pair whose keys do not match."""
    key = serialization.load_pem_private_key(key_pem, password=password)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("only RSA keys are supported")
    cert = x509.load_pem_x509_certificate(cert_pem)
    if cert.public_key() != key.public_key():
        raise ValueError("the private key does not belong to the certificate")
    return KeyPair(private_key=key, certificate=cert)


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def serial_text(cert: x509.Certificate) -> str:
    """The serial number as colon-separated hex bytes, as certificate viewers show it (and
    without long digit runs that a person-id mask would hide)."""
    return serial_hex(cert.serial_number)


def serial_hex(serial: int) -> str:
    """A serial number as colon-separated hex bytes (see serial_text); a negative one (RFC
    5280 forbids it, a damaged certificate can carry it) with a minus sign."""
    if serial < 0:
        return "-" + serial_hex(-serial)
    return serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big").hex(":")


# What the service reads of a certificate from outside, each read once by `fully_parsed`.
_FIELDS: tuple[tuple[str, Callable[[x509.Certificate], object]], ...] = (
    ("versjon", lambda c: c.version),
    ("serienummer", lambda c: serial_text(c)),
    ("subjekt", lambda c: c.subject.rfc4514_string()),
    ("utsteder", lambda c: c.issuer.rfc4514_string()),
    ("gyldighetsperiode", lambda c: (c.not_valid_before_utc, c.not_valid_after_utc)),
    ("utvidelser", lambda c: list(c.extensions)),
    ("offentlig nøkkel", lambda c: _public_key_if_known(c)),
)


def _public_key_if_known(cert: x509.Certificate) -> object:
    """The public key; None for an algorithm we lack: that is a signature that cannot be
    verified (a verdict the signature checks give), not an unreadable certificate."""
    try:
        return cert.public_key()
    except UnsupportedAlgorithm:
        return None


def fully_parsed(cert: x509.Certificate) -> x509.Certificate:
    """`cert`, with every field the service reads parsed now. `cryptography` loads a
    certificate lazily: loading checks the outer structure only, and a damaged subject,
    version, serial or extension raises (ValueError, InvalidVersion, ...) when it is first
    read, deep inside a later step. ValueError naming the field (in Norwegian: it ends up in
    a finding) when one cannot be read."""
    for name, read in _FIELDS:
        try:
            read(cert)
        except Exception as exc:  # whatever the parser raises: the field is unreadable
            raise ValueError(f"feltet {name} kan ikke leses ({type(exc).__name__})") from exc
    return cert


def load_der_certificate(der: bytes) -> x509.Certificate:
    """A DER certificate from outside, every field the service reads parsed (ValueError)."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except x509.InvalidVersion as exc:  # not a ValueError, raised by the load itself
        raise ValueError(f"feltet versjon kan ikke leses ({type(exc).__name__})") from exc
    return fully_parsed(cert)


def describe_certificate(cert: x509.Certificate) -> str:
    """Subject, serial and issuer: how a finding names a certificate."""
    return (
        f"sertifikat '{cert.subject.rfc4514_string()}' "
        f"(serienummer {serial_text(cert)}, utsteder '{cert.issuer.rfc4514_string()}')"
    )
