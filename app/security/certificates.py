"""Checks on the certificate that signed a message (envelope) or a business document.

A signer is trusted when its certificate equals one registered for the party (AR/CPA: pinned)
or chains to a trust anchor and carries the party's organisation number in
`organizationIdentifier` (OID 2.5.4.97, `NTRNO-<orgnr>`). It must be valid at `now`, allow
signing (nonRepudiation, which is all Norwegian signing certificates have, or
digitalSignature), and not be revoked per the given CRLs.

Revocation has three answers: not revoked, revoked, or unknown (no current, correctly signed CRL
for the issuer). Unknown is our outage, not the sender's fault: the status is
`CertStatus.UNAVAILABLE`, the finding's rule is in `rules.TRANSIENT_RULE_IDS` (ebMS errorCode
`DeliveryFailure`), and the intake service should let the sender retry rather than reject.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from app.core.findings import Finding, Rule
from app.security import rules
from app.security.keys import describe_certificate

_MAX_CHAIN = 6


class CertStatus(StrEnum):
    VALID = "valid"
    INVALID = "invalid"  # unknown signer, wrong organisation, expired, wrong key usage
    REVOKED = "revoked"
    UNAVAILABLE = "unavailable"  # revocation status unknown: temporary, retry later


class SignatureLevel(StrEnum):
    TRANSPORT = "transport"  # the ebXML envelope signature: MessageError SecurityFailure
    BUSINESS = "business"  # MsgHead ds:Signature or CMS SignedData: AppRec S01/S02/S03


@dataclass(frozen=True, slots=True)
class PartyTrust:
    """What the party registry knows about the sender: its organisation number and the signing
    certificates registered for it (AR or CPA)."""

    orgnr: str | None
    signing_certs: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    """An OCSP responder's answer for one certificate, its signature already verified against
    the issuer by whoever fetched it (app/revocation/ocsp.py)."""

    issuer: x509.Name
    serial: int
    revoked: bool
    this_update: dt.datetime
    next_update: dt.datetime | None


@dataclass(frozen=True, slots=True)
class TrustStore:
    """Trust anchors (CA roots), intermediate CAs and CRLs. `crls=None` switches revocation
    checking off (development only); an empty tuple means no CRL is known: status unavailable.
    `ocsp` answers count where no current CRL decides."""

    anchors: tuple[x509.Certificate, ...] = ()
    intermediates: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] | None = ()
    ocsp: tuple[OcspAnswer, ...] = ()


@dataclass(frozen=True, slots=True)
class CertificateCheck:
    status: CertStatus
    findings: tuple[Finding, ...]
    pinned: bool  # equals a certificate registered for the party
    chain: tuple[x509.Certificate, ...]  # leaf first, up to the anchor (empty when none)

    @property
    def accepted(self) -> bool:
        return self.status is CertStatus.VALID

    @property
    def transient(self) -> bool:
        return self.status is CertStatus.UNAVAILABLE


@dataclass(frozen=True, slots=True)
class _LevelRules:
    unknown: Rule
    orgnr: Rule
    validity: Rule
    key_usage: Rule
    revoked: Rule
    unavailable: Rule


_LEVEL_RULES = {
    SignatureLevel.TRANSPORT: _LevelRules(
        rules.CERT_UNKNOWN,
        rules.CERT_ORGNR,
        rules.CERT_VALIDITY,
        rules.CERT_KEY_USAGE,
        rules.CERT_REVOKED,
        rules.CERT_STATUS_UNAVAILABLE,
    ),
    SignatureLevel.BUSINESS: _LevelRules(
        rules.MSG_CERT_UNKNOWN,
        rules.MSG_CERT_ORGNR,
        rules.MSG_CERT_VALIDITY,
        rules.MSG_CERT_KEY_USAGE,
        rules.MSG_CERT_REVOKED,
        rules.MSG_CERT_STATUS_UNAVAILABLE,
    ),
}


def organization_number(cert: x509.Certificate) -> str | None:
    """The orgnr from the subject's organizationIdentifier (`NTRNO-<orgnr>`), else None."""
    for attr in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode()
        if value.upper().startswith("NTRNO-"):
            return value[6:]
    return None


# RFC 5280's names for the KeyUsage bits, as certificate viewers (and senders) know them.
_X509_NAMES = {
    "digital_signature": "digitalSignature",
    "content_commitment": "nonRepudiation",
    "key_encipherment": "keyEncipherment",
    "data_encipherment": "dataEncipherment",
    "key_agreement": "keyAgreement",
    "key_cert_sign": "keyCertSign",
    "crl_sign": "cRLSign",
    "encipher_only": "encipherOnly",
    "decipher_only": "decipherOnly",
}


def key_usage_names(cert: x509.Certificate) -> frozenset[str] | None:
    """The KeyUsage bits set (cryptography's names, nonRepudiation = `content_commitment`),
    None when the certificate has no KeyUsage extension, none when its extensions cannot be
    read."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # unparsable extensions: no usage can be trusted, none is granted
        return frozenset()
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    )
    found = {n for n in names if getattr(usage, n)}
    if usage.key_agreement:
        found |= {n for n in ("encipher_only", "decipher_only") if getattr(usage, n)}
    return frozenset(found)


def may_sign(cert: x509.Certificate) -> bool:
    usage = key_usage_names(cert)
    return usage is None or bool(usage & {"content_commitment", "digital_signature"})


def _valid_at(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (x509.ExtensionNotFound, ValueError):  # ValueError: unparsable extensions
        return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> bool:
    if not _is_ca(issuer) or not _valid_at(issuer, now):
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def build_chain(
    cert: x509.Certificate,
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    now: dt.datetime,
) -> tuple[x509.Certificate, ...] | None:
    """The chain leaf -> ... -> anchor, or None when `cert` does not chain to an anchor."""
    chain = [cert]
    current = cert
    for _ in range(_MAX_CHAIN):
        anchor = next((a for a in anchors if _issued_by(current, a, now)), None)
        if anchor is not None:
            return (*chain, anchor)
        step = next(
            (i for i in intermediates if i not in chain and _issued_by(current, i, now)), None
        )
        if step is None:
            return None
        chain.append(step)
        current = step
    return None


def _find_issuer(
    cert: x509.Certificate, trust: TrustStore, now: dt.datetime
) -> x509.Certificate | None:
    return next(
        (c for c in (*trust.intermediates, *trust.anchors) if _issued_by(cert, c, now)), None
    )


def _revocation(
    cert: x509.Certificate,
    issuer: x509.Certificate | None,
    crls: Sequence[x509.CertificateRevocationList],
    now: dt.datetime,
    ocsp: Sequence[OcspAnswer] = (),
) -> CertStatus:
    """REVOKED, VALID (a current CRL from the issuer does not list it, or else a current OCSP
    answer says so) or UNAVAILABLE.
    The newest current CRL decides: a fetched CRL may sit beside an older one on disk."""
    if issuer is None:
        return CertStatus.UNAVAILABLE
    public_key = issuer.public_key()
    candidates = sorted(
        (c for c in crls if c.issuer == cert.issuer), key=lambda c: c.last_update_utc, reverse=True
    )
    for crl in candidates:
        next_update = crl.next_update_utc
        if crl.last_update_utc > now or (next_update is not None and next_update < now):
            continue
        if not crl.is_signature_valid(public_key):  # type: ignore[arg-type]
            continue
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is not None and entry.revocation_date_utc <= now:
            return CertStatus.REVOKED
        return CertStatus.VALID
    return _ocsp_status(cert, ocsp, now)


def _ocsp_status(
    cert: x509.Certificate, answers: Sequence[OcspAnswer], now: dt.datetime
) -> CertStatus:
    current = [
        a
        for a in answers
        if a.issuer == cert.issuer
        and a.serial == cert.serial_number
        and a.this_update <= now
        and (a.next_update is None or now <= a.next_update)
    ]
    if not current:
        return CertStatus.UNAVAILABLE
    newest = max(current, key=lambda a: a.this_update)
    return CertStatus.REVOKED if newest.revoked else CertStatus.VALID


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Fault:
    """What is wrong with a certificate; the caller says where (the finding's location)."""

    rule: Rule
    detail: str
    status: CertStatus = CertStatus.INVALID


def check_signer(
    cert: x509.Certificate,
    *,
    party: PartyTrust,
    trust: TrustStore,
    now: dt.datetime,
    level: SignatureLevel,
    location: str = "ds:Signature/ds:KeyInfo",
) -> CertificateCheck:
    """Check a signer certificate for a party at `now`; see the module doc for the rules."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    lr = _LEVEL_RULES[level]
    who_ = _upper_first(describe_certificate(cert))
    pinned = any(cert == registered for registered in party.signing_certs)
    chain = build_chain(cert, trust.anchors, trust.intermediates, now) or ()
    faults = [
        fault
        for fault in (
            _validity_fault(cert, lr, who_, now),
            _usage_fault(cert, lr, who_),
            None if pinned else _issuer_fault(cert, lr, who_, party, chain),
        )
        if fault is not None
    ]
    if not faults and trust.crls is not None:
        revoked = _revocation_fault(cert, lr, chain, trust, now)
        faults = [revoked] if revoked is not None else []
    if not faults:
        return CertificateCheck(CertStatus.VALID, (), pinned, chain)
    findings = tuple(Finding(rule=f.rule, location=location, detail=f.detail) for f in faults)
    return CertificateCheck(faults[0].status, findings, pinned, chain)


def _validity_fault(
    cert: x509.Certificate, lr: _LevelRules, who_: str, now: dt.datetime
) -> _Fault | None:
    if _valid_at(cert, now):
        return None
    return _Fault(
        rule=lr.validity,
        detail=f"{who_} er gyldig fra {cert.not_valid_before_utc:%Y-%m-%d} til "
        f"{cert.not_valid_after_utc:%Y-%m-%d} og var ikke gyldig {now:%Y-%m-%d %H:%M} UTC. "
        "Forny sertifikatet og registrer det nye i Adresseregisteret.",
    )


def _usage_fault(cert: x509.Certificate, lr: _LevelRules, who_: str) -> _Fault | None:
    if may_sign(cert):
        return None
    usage = ", ".join(sorted(_X509_NAMES.get(n, n) for n in key_usage_names(cert) or ()))
    return _Fault(
        rule=lr.key_usage,
        detail=f"{who_} har KeyUsage {usage or 'ingen'}: det er ikke et signatursertifikat "
        "(krever nonRepudiation eller digitalSignature). Signer med virksomhetens "
        "signatursertifikat, ikke krypteringssertifikatet.",
    )


def _issuer_fault(
    cert: x509.Certificate,
    lr: _LevelRules,
    who_: str,
    party: PartyTrust,
    chain: Sequence[x509.Certificate],
) -> _Fault | None:
    """A certificate not registered for the party: issued by an accepted CA to the party's
    organisation number."""
    if not chain:
        return _Fault(
            rule=lr.unknown,
            detail=f"{who_} er ikke registrert for avsenderen og er ikke utstedt av en "
            "godkjent utsteder. Registrer sertifikatet i Adresseregisteret.",
        )
    found = organization_number(cert)
    if party.orgnr is not None and found == party.orgnr:
        return None
    return _Fault(
        rule=lr.orgnr,
        detail=f"{who_} har organisasjonsnummer {found or '(mangler)'}, "
        f"men avsenderen har organisasjonsnummer {party.orgnr or '(ukjent)'}.",
    )


def _revocation_fault(
    cert: x509.Certificate,
    lr: _LevelRules,
    chain: Sequence[x509.Certificate],
    trust: TrustStore,
    now: dt.datetime,
) -> _Fault | None:
    """Revocation of the leaf and each intermediate (the anchor is trusted as configured)."""
    assert trust.crls is not None
    to_check = chain[:-1] if chain else (cert,)
    for index, member in enumerate(to_check):
        issuer = chain[index + 1] if chain else _find_issuer(cert, trust, now)
        status = _revocation(member, issuer, trust.crls, now, trust.ocsp)
        if status is CertStatus.REVOKED:
            return _Fault(
                rule=lr.revoked,
                detail=f"{_upper_first(describe_certificate(member))} er tilbakekalt av "
                "utstederen"
                + ("" if member is cert else f" (i kjeden til {describe_certificate(cert)})")
                + ". Bruk et gyldig sertifikat.",
                status=CertStatus.REVOKED,
            )
        if status is CertStatus.UNAVAILABLE:
            return _Fault(
                rule=lr.unavailable,
                detail="Mottaker har ingen gyldig sperreliste (CRL) for utstederen av "
                f"{describe_certificate(member)} og kan ikke sjekke om det er tilbakekalt. "
                "Midlertidig feil hos mottaker: send meldingen på nytt senere.",
                status=CertStatus.UNAVAILABLE,
            )
    return None
