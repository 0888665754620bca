"""The throw-away development PKI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.dev.devpki import (
    DEV_KPR_ORGNR,
    DEV_MUNICIPALITY_ORGNR,
    dev_pki,
    generate_dev_pki,
    write_dev_pki,
)
from app.security.certificates import (
    PartyTrust,
    SignatureLevel,
    TrustStore,
    check_signer,
    key_usage_names,
    organization_number,
)
from app.security.keys import load_key_pair

NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_signing_certs_are_non_repudiation_only_with_orgnr() -> None:
    pki = dev_pki(NOW)
    for party, orgnr in ((pki.kpr, DEV_KPR_ORGNR), (pki.municipality, DEV_MUNICIPALITY_ORGNR)):
        assert key_usage_names(party.signing.certificate) == frozenset({"content_commitment"})
        assert key_usage_names(party.encryption.certificate) == frozenset({"key_encipherment"})
        assert organization_number(party.signing.certificate) == orgnr
        assert organization_number(party.encryption.certificate) == orgnr


def test_dev_pki_is_cached_per_now() -> None:
    assert dev_pki(NOW) is dev_pki(NOW)


def test_dev_pki_certs_pass_the_signer_checks() -> None:
    pki = dev_pki(NOW)
    check = check_signer(
        pki.kpr.signing.certificate,
        party=PartyTrust(orgnr=DEV_KPR_ORGNR),
        trust=TrustStore(anchors=(pki.ca.certificate,), crls=(pki.crl,)),
        now=NOW,
        level=SignatureLevel.TRANSPORT,
    )
    assert check.accepted, check.findings


def test_write_dev_pki_writes_loadable_pem_files(tmp_path: Path) -> None:
    pki = dev_pki(NOW)
    paths = write_dev_pki(tmp_path / "pki", pki)
    names = {p.name for p in paths}
    assert {"ca.crt", "ca.crl", "kpr-signing.key", "municipality-encryption.crt"} <= names
    pair = load_key_pair(
        (tmp_path / "pki/kpr-signing.key").read_bytes(),
        (tmp_path / "pki/kpr-signing.crt").read_bytes(),
    )
    assert pair.certificate == pki.kpr.signing.certificate
    assert (tmp_path / "pki/kpr-signing.key").stat().st_mode & 0o077 == 0
    crl = x509.load_pem_x509_crl((tmp_path / "pki/ca.crl").read_bytes())
    assert crl.is_signature_valid(pki.ca.certificate.public_key())  # type: ignore[arg-type]
    assert len(crl) == 0


def test_generate_dev_pki_makes_fresh_keys(tmp_path: Path) -> None:
    pki = generate_dev_pki(tmp_path, NOW)
    assert pki.kpr.signing.private_key is not dev_pki(NOW).kpr.signing.private_key
    assert (tmp_path / "municipality-signing.crt").read_bytes().startswith(b"-----BEGIN")
    pki.municipality.signing.certificate.verify_directly_issued_by(pki.ca.certificate)


def test_load_key_pair_refuses_a_mismatched_pair() -> None:
    pki = dev_pki(NOW)
    key_pem = pki.kpr.signing.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = pki.kpr.encryption.certificate.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(ValueError, match="does not belong"):
        load_key_pair(key_pem, cert_pem)
