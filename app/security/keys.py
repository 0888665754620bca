"""Key material shared by the security layer: a private key with its certificate."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
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
    """A serial number as colon-separated hex bytes (see serial_text)."""
    return serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big").hex(":")


def describe_certificate(cert: x509.Certificate) -> str:
    """Subject, serial and issuer: how a finding names a certificate."""
    return (
        f"sertifikat '{cert.subject.rfc4514_string()}' "
        f"(serienummer {serial_text(cert)}, utsteder '{cert.issuer.rfc4514_string()}')"
    )
