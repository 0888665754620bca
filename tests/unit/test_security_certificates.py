"""Checks on signer certificates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from app.core.findings import Consequence
from app.dev.devpki import DevPki, dev_pki, issue_certificate, make_ca, make_crl
from app.security import rules
from app.security.certificates import (
    CertStatus,
    PartyTrust,
    SignatureLevel,
    TrustStore,
    check_signer,
    key_usage_names,
    may_sign,
    organization_number,
)
from app.security.keys import serial_text
from app.security.xmldsig import verify_envelope

NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
T = SignatureLevel.TRANSPORT
B = SignatureLevel.BUSINESS


@pytest.fixture(scope="session")
def pki() -> DevPki:
    return dev_pki(NOW)


def trust(
    pki: DevPki, crls: tuple[x509.CertificateRevocationList, ...] | None = None
) -> TrustStore:
    return TrustStore(anchors=(pki.ca.certificate,), crls=(pki.crl,) if crls is None else crls)


def party(pki: DevPki, *, pinned: bool = False) -> PartyTrust:
    certs = (pki.municipality.signing.certificate,) if pinned else ()
    return PartyTrust(orgnr=pki.municipality.orgnr, signing_certs=certs)


def ids(check: object) -> list[str]:
    return [f.rule.id for f in check.findings]  # type: ignore[attr-defined]


def test_real_nav_cert_is_non_repudiation_only_and_accepted(reference_dir: Path) -> None:
    import email
    from email import policy

    raw = (reference_dir / "samples/ebxml/nav-real-smtp-message.eml").read_bytes()
    message = email.message_from_bytes(raw, policy=policy.compat32)
    leaves = [p for p in message.walk() if not p.is_multipart()]
    soap, att = leaves[0].get_payload(decode=True), leaves[1].get_payload(decode=True)
    assert isinstance(soap, bytes)
    assert isinstance(att, bytes)
    cert = verify_envelope(soap, {str(leaves[1]["Content-Id"]): att}).signer
    assert cert is not None
    assert key_usage_names(cert) == frozenset({"content_commitment"})
    assert may_sign(cert)
    assert organization_number(cert) == "993954896"
    at = dt.datetime(2023, 8, 29, 10, 56, 50, tzinfo=dt.UTC)
    check = check_signer(
        cert,
        party=PartyTrust(orgnr="993954896", signing_certs=(cert,)),
        trust=TrustStore(crls=None),
        now=at,
        level=T,
    )
    assert check.status is CertStatus.VALID, check.findings
    assert check.pinned
    # ... and it has expired since.
    later = check_signer(
        cert,
        party=PartyTrust(orgnr="993954896", signing_certs=(cert,)),
        trust=TrustStore(crls=None),
        now=dt.datetime(2025, 10, 1, tzinfo=dt.UTC),
        level=T,
    )
    assert ids(later) == ["SEC-CERT-VALIDITY"]


def test_chained_cert_with_right_orgnr_is_valid(pki: DevPki) -> None:
    check = check_signer(
        pki.municipality.signing.certificate, party=party(pki), trust=trust(pki), now=NOW, level=T
    )
    assert check.accepted
    assert not check.pinned
    assert check.chain == (pki.municipality.signing.certificate, pki.ca.certificate)


def test_pinned_cert_is_valid_without_trust_anchor(pki: DevPki) -> None:
    store = TrustStore(intermediates=(pki.ca.certificate,), crls=(pki.crl,))
    check = check_signer(
        pki.municipality.signing.certificate,
        party=party(pki, pinned=True),
        trust=store,
        now=NOW,
        level=T,
    )
    assert check.accepted
    assert check.pinned


def test_unknown_signer(pki: DevPki) -> None:
    other_ca = make_ca(NOW, name="Someone Else CA")
    stranger = issue_certificate(
        other_ca,
        common_name="Demo kommune",
        orgnr=pki.municipality.orgnr,
        purpose="signing",
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=10),
    )
    check = check_signer(stranger.certificate, party=party(pki), trust=trust(pki), now=NOW, level=T)
    assert check.status is CertStatus.INVALID
    assert ids(check) == ["SEC-CERT-UNKNOWN"]
    detail = check.findings[0].detail
    assert "Demo kommune" in detail
    assert serial_text(stranger.certificate) in detail
    assert "Someone Else CA" in detail


def test_wrong_orgnr(pki: DevPki) -> None:
    check = check_signer(
        pki.kpr.signing.certificate, party=party(pki), trust=trust(pki), now=NOW, level=T
    )
    assert ids(check) == ["SEC-CERT-ORGNR"]
    assert pki.kpr.orgnr in check.findings[0].detail
    assert pki.municipality.orgnr in check.findings[0].detail


def test_expired(pki: DevPki) -> None:
    old = issue_certificate(
        pki.ca,
        common_name="Demo kommune",
        orgnr=pki.municipality.orgnr,
        purpose="signing",
        not_before=NOW - dt.timedelta(days=400),
        not_after=NOW - dt.timedelta(days=1),
    )
    check = check_signer(old.certificate, party=party(pki), trust=trust(pki), now=NOW, level=T)
    assert ids(check) == ["SEC-CERT-VALIDITY"]
    assert check.findings[0].rule.ebms_error_code == "SecurityFailure"


def test_not_yet_valid(pki: DevPki) -> None:
    check = check_signer(
        pki.municipality.signing.certificate,
        party=party(pki, pinned=True),
        trust=trust(pki),
        now=NOW - dt.timedelta(days=30),
        level=T,
    )
    assert "SEC-CERT-VALIDITY" in ids(check)


def test_encryption_cert_cannot_sign(pki: DevPki) -> None:
    check = check_signer(
        pki.municipality.encryption.certificate,
        party=party(pki),
        trust=trust(pki),
        now=NOW,
        level=T,
    )
    assert ids(check) == ["SEC-CERT-KEY-USAGE"]
    assert "keyEncipherment" in check.findings[0].detail


def test_digital_signature_cert_may_sign(pki: DevPki) -> None:
    cert = issue_certificate(
        pki.ca,
        common_name="Demo kommune",
        orgnr=pki.municipality.orgnr,
        purpose="signing-digital",
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=1),
    ).certificate
    assert check_signer(cert, party=party(pki), trust=trust(pki), now=NOW, level=T).accepted


def test_revoked(pki: DevPki) -> None:
    cert = pki.municipality.signing.certificate
    crl = make_crl(pki.ca, NOW, revoked_serials=(cert.serial_number,))
    check = check_signer(cert, party=party(pki), trust=trust(pki, (crl,)), now=NOW, level=T)
    assert check.status is CertStatus.REVOKED
    assert ids(check) == ["SEC-CERT-REVOKED"]


def test_revoked_in_business_layer_is_s03(pki: DevPki) -> None:
    cert = pki.municipality.signing.certificate
    crl = make_crl(pki.ca, NOW, revoked_serials=(cert.serial_number,))
    check = check_signer(cert, party=party(pki), trust=trust(pki, (crl,)), now=NOW, level=B)
    assert check.findings[0].rule is rules.MSG_CERT_REVOKED
    assert check.findings[0].rule.apprec_code == "S03"
    assert check.findings[0].rule.consequence is Consequence.REJECT_MESSAGE


def test_business_level_invalid_cert_is_s02(pki: DevPki) -> None:
    check = check_signer(
        pki.kpr.signing.certificate, party=party(pki), trust=trust(pki), now=NOW, level=B
    )
    assert [f.rule.apprec_code for f in check.findings] == ["S02"]


def test_no_crl_is_status_unavailable_and_temporary(pki: DevPki) -> None:
    check = check_signer(
        pki.municipality.signing.certificate,
        party=party(pki),
        trust=trust(pki, ()),
        now=NOW,
        level=T,
    )
    assert check.status is CertStatus.UNAVAILABLE
    assert check.transient
    assert not check.accepted
    assert ids(check) == ["SEC-CERT-STATUS-UNAVAILABLE"]
    assert check.findings[0].rule.id in rules.TRANSIENT_RULE_IDS
    assert check.findings[0].rule.ebms_error_code == "DeliveryFailure"


def test_stale_crl_is_status_unavailable(pki: DevPki) -> None:
    crl = make_crl(pki.ca, NOW - dt.timedelta(days=60))  # next update 30 days ago
    check = check_signer(
        pki.municipality.signing.certificate,
        party=party(pki),
        trust=trust(pki, (crl,)),
        now=NOW,
        level=B,
    )
    assert check.status is CertStatus.UNAVAILABLE
    assert ids(check) == ["SEC-MSG-CERT-STATUS-UNAVAILABLE"]


def test_crl_signed_by_someone_else_is_ignored(pki: DevPki) -> None:
    cert = pki.municipality.signing.certificate
    forger = make_ca(NOW, name="KPR Dev CA", key=pki.kpr.signing.private_key)  # same name
    forged = make_crl(forger, NOW)
    check = check_signer(cert, party=party(pki), trust=trust(pki, (forged,)), now=NOW, level=T)
    assert check.status is CertStatus.UNAVAILABLE


def test_invalid_cert_is_not_also_reported_unavailable(pki: DevPki) -> None:
    check = check_signer(
        pki.kpr.signing.certificate, party=party(pki), trust=trust(pki, ()), now=NOW, level=B
    )
    assert ids(check) == ["SEC-MSG-CERT-ORGNR"]


def test_naive_now_is_refused(pki: DevPki) -> None:
    with pytest.raises(ValueError, match="timezone"):
        check_signer(
            pki.municipality.signing.certificate,
            party=party(pki),
            trust=trust(pki),
            now=dt.datetime(2024, 3, 1),
            level=T,
        )


def test_every_rule_has_norwegian_text_and_one_outcome() -> None:
    seen = set()
    for rule in rules.RULES:
        assert rule.id.startswith("SEC-")
        assert rule.id not in seen
        seen.add(rule.id)
        assert rule.text_no
        assert (rule.apprec_code is None) != (rule.ebms_error_code is None)
        if rule.apprec_code in {"S01", "S02", "S03"}:
            assert rule.consequence is Consequence.REJECT_MESSAGE
        if rule.ebms_error_code == "SecurityFailure":
            assert rule.consequence is Consequence.MESSAGE_ERROR


def test_serial_is_shown_as_colon_separated_bytes_that_no_id_mask_hides() -> None:
    from app.identifiers import mask_person_ids as scrub_fnr  # the mask the AppRec OT goes through

    stranger = make_ca(NOW)  # any certificate
    text = serial_text(stranger.certificate)
    assert text.count(":") == (len(text) - 2) // 3
    assert int(text.replace(":", ""), 16) == stranger.certificate.serial_number
    assert scrub_fnr(f"serienummer {text}") == f"serienummer {text}"


def test_unreadable_extensions_are_a_finding_not_a_crash(pki: DevPki) -> None:
    """Found by the intake fuzzer: a certificate whose KeyUsage cannot be parsed made
    cryptography raise when its extensions were read, and the request ended as an internal
    error. It is now refused for its key usage, like any certificate that may not sign."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtensionOID, NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Broken kommune")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(pki.ca.certificate.subject)
        .public_key(pki.municipality.signing.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE, b"\x05\x00"), False)
        .sign(pki.ca.private_key, hashes.SHA256())
    )
    with pytest.raises(ValueError, match="asn1"):
        _ = cert.extensions  # what cryptography does with it
    assert key_usage_names(cert) == frozenset()
    assert not may_sign(cert)
    check = check_signer(cert, party=party(pki), trust=trust(pki), now=NOW, level=T)
    assert "SEC-CERT-KEY-USAGE" in ids(check)
    assert not check.accepted
    from app.revocation.crls import distribution_points
    from app.revocation.ocsp import responder_urls

    assert distribution_points(cert) == responder_urls(cert) == []
