"""A certificate from outside is parsed whole when it is read (`keys.load_der_certificate`):
`cryptography` loads lazily, and a damaged subject once raised only when a later step read
it, as an internal error (issue 20's fuzz run)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.dev.devpki import dev_pki
from app.parties.spec import PartySpecError, certificate_spec
from app.security.keys import load_der_certificate, serial_hex


def signing_der() -> bytes:
    pki = dev_pki(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0))
    return pki.municipality.signing.certificate.public_bytes(serialization.Encoding.DER)


def damaged_subjects(der: bytes) -> list[bytes]:
    """`der` with one bit flipped in its subject, each way that loads but whose subject the
    lazy parser refuses only when it is read."""
    subject = x509.load_der_x509_certificate(der).subject.public_bytes()
    start = der.index(subject)
    found = []
    for at in range(start, start + len(subject)):
        for mask in (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80):
            damaged = bytearray(der)
            damaged[at] ^= mask
            try:
                cert = x509.load_der_x509_certificate(bytes(damaged))
            except ValueError:
                continue  # refused on load: never was the problem
            try:
                cert.subject.rfc4514_string()
            except Exception:  # ValueError, TypeError, ...: whatever the parser raises
                found.append(bytes(damaged))
    return found


def test_a_damaged_subject_is_refused_when_the_certificate_is_read() -> None:
    der = signing_der()
    damaged = damaged_subjects(der)
    assert damaged  # the lazy parser lets such certificates through its load
    for each in damaged:
        with pytest.raises(ValueError, match="feltet subjekt kan ikke leses"):
            load_der_certificate(each)
    assert load_der_certificate(der).subject.rfc4514_string()


def test_a_party_certificate_with_a_damaged_subject_is_refused_on_import() -> None:
    damaged = damaged_subjects(signing_der())[0]
    with pytest.raises(PartySpecError, match=r"not a readable X\.509 certificate"):
        certificate_spec(damaged, "signing")


def _key_flips(der: bytes) -> dict[str, bytes]:
    """`der` with one bit flipped in its public key, by what reading the key then raises."""
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    start = der.index(spki)
    found: dict[str, bytes] = {}
    for at in range(start, start + len(spki)):
        damaged = bytearray(der)
        damaged[at] ^= 0x01
        try:
            loaded = x509.load_der_x509_certificate(bytes(damaged))
        except ValueError:
            continue  # refused on load: never was the problem
        try:
            loaded.public_key()
        except Exception as exc:
            found.setdefault(type(exc).__name__, bytes(damaged))
    return found


def test_a_damaged_public_key_is_unreadable_and_an_unknown_algorithm_is_not() -> None:
    flips = _key_flips(signing_der())
    with pytest.raises(ValueError, match="feltet offentlig nøkkel kan ikke leses"):
        load_der_certificate(flips["ValueError"])
    # an algorithm we lack: readable; the signature checks call it unverifiable
    assert load_der_certificate(flips["UnsupportedAlgorithm"])


def test_a_negative_serial_is_shown_with_a_sign() -> None:
    assert serial_hex(-0x0102) == "-01:02"
    assert serial_hex(0) == "00"
