"""A throw-away development PKI shaped like the Norwegian enterprise certificates.

One CA; for KPR and for a demo municipality each a signing certificate (KeyUsage
nonRepudiation only, like Buypass/Commfides signing certs) and an encryption certificate
(keyEncipherment), both carrying `organizationIdentifier` (OID 2.5.4.97) `NTRNO-<orgnr>`;
and an empty CRL from the CA. Never for production.

RSA-2048 key generation is slow, so keys are cached per process by label (`rsa_key`), and the
in-memory PKI (`dev_pki`) is cached per `now`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from app.platform.private_files import private_dir
from app.security.keys import KeyPair

# Made-up organisation numbers with valid check digits (not real organisations).
DEV_KPR_ORGNR = "910000004"
DEV_MUNICIPALITY_ORGNR = "920000002"

_CA_LIFETIME = dt.timedelta(days=3650)
_LEAF_LIFETIME = dt.timedelta(days=730)
_BACKDATE = dt.timedelta(days=1)

Purpose = Literal["signing", "signing-digital", "encryption"]


@dataclass(frozen=True, slots=True)
class DevParty:
    name: str
    orgnr: str
    signing: KeyPair
    encryption: KeyPair


@dataclass(frozen=True, slots=True)
class DevPki:
    ca: KeyPair
    crl: x509.CertificateRevocationList
    kpr: DevParty
    municipality: DevParty


@lru_cache(maxsize=64)
def rsa_key(label: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA key, generated once per (label, bits) per process."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _name(common_name: str, orgnr: str | None, org: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "NO"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org or common_name),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]
    if orgnr is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"NTRNO-{orgnr}"))
    return x509.Name(attrs)


def _key_usage(
    *,
    non_repudiation: bool = False,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    cert_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=non_repudiation,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(
    now: dt.datetime, *, name: str = "KPR Dev CA", key: rsa.RSAPrivateKey | None = None
) -> KeyPair:
    """A self-signed CA certificate valid from a day before `now`."""
    key = key or rsa_key(f"ca:{name}")
    subject = _name(name, None, "KPR Dev PKI")
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(private_key=key, certificate=cert)


def issue_certificate(
    ca: KeyPair,
    *,
    common_name: str,
    orgnr: str | None,
    purpose: Purpose,
    not_before: dt.datetime,
    not_after: dt.datetime,
    key: rsa.RSAPrivateKey | None = None,
    crl_url: str | None = None,
    ocsp_url: str | None = None,
) -> KeyPair:
    """Issue a leaf certificate. `purpose` is "signing" (nonRepudiation only) or "encryption"
    (keyEncipherment, dataEncipherment off) or "signing-digital" (digitalSignature only).
    `crl_url` adds a CRL distribution point, as Buypass and Commfides certificates carry;
    `ocsp_url` an OCSP responder (Authority Information Access)."""
    usages: dict[str, x509.KeyUsage] = {
        "signing": _key_usage(non_repudiation=True),
        "signing-digital": _key_usage(digital_signature=True),
        "encryption": _key_usage(key_encipherment=True),
    }
    if purpose not in usages:
        raise ValueError(f"unknown purpose {purpose!r}")
    key = key or rsa_key(f"leaf:{common_name}:{orgnr}:{purpose}")
    ca_cert = ca.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, orgnr))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usages[purpose], critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
    )
    if crl_url is not None:
        point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(crl_url)],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    if ocsp_url is not None:
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    cert = builder.sign(ca.private_key, hashes.SHA256())
    return KeyPair(private_key=key, certificate=cert)


def make_crl(
    ca: KeyPair,
    now: dt.datetime,
    *,
    revoked_serials: tuple[int, ...] = (),
    next_update: dt.timedelta = dt.timedelta(days=30),
) -> x509.CertificateRevocationList:
    """A CRL signed by `ca`, issued at `now`, listing `revoked_serials` (revoked an hour ago)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - dt.timedelta(hours=1))
        .next_update(now + next_update)
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now - dt.timedelta(hours=1))
            .build()
        )
    return builder.sign(ca.private_key, hashes.SHA256())


def make_party(
    ca: KeyPair,
    name: str,
    orgnr: str,
    now: dt.datetime,
    *,
    crl_url: str | None = None,
    ocsp_url: str | None = None,
) -> DevParty:
    """A signing and an encryption certificate for one organisation."""
    not_before, not_after = now - _BACKDATE, now + _LEAF_LIFETIME
    return DevParty(
        name=name,
        orgnr=orgnr,
        signing=issue_certificate(
            ca,
            common_name=name,
            orgnr=orgnr,
            purpose="signing",
            not_before=not_before,
            not_after=not_after,
            crl_url=crl_url,
            ocsp_url=ocsp_url,
        ),
        encryption=issue_certificate(
            ca,
            common_name=name,
            orgnr=orgnr,
            purpose="encryption",
            not_before=not_before,
            not_after=not_after,
            crl_url=crl_url,
            ocsp_url=ocsp_url,
        ),
    )


@lru_cache(maxsize=8)
def dev_pki(now: dt.datetime) -> DevPki:
    """The in-memory dev PKI, valid around `now` (cached per process and `now`)."""
    ca = make_ca(now)
    return DevPki(
        ca=ca,
        crl=make_crl(ca, now),
        kpr=make_party(ca, "KPR Dev", DEV_KPR_ORGNR, now),
        municipality=make_party(ca, "Demo kommune", DEV_MUNICIPALITY_ORGNR, now),
    )


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_dev_pki(directory: Path, pki: DevPki) -> tuple[Path, ...]:
    """Write the PKI as PEM files (unencrypted keys, mode 0600) and return the paths.

    Files: ca.crt, ca.key, ca.crl, and per party
    `<kpr|municipality>-<signing|encryption>.{crt,key}`.
    """
    private_dir(directory)
    files: dict[str, bytes] = {
        "ca.crt": _cert_pem(pki.ca.certificate),
        "ca.key": _key_pem(pki.ca.private_key),
        "ca.crl": pki.crl.public_bytes(serialization.Encoding.PEM),
    }
    for label, party in (("kpr", pki.kpr), ("municipality", pki.municipality)):
        for purpose, pair in (("signing", party.signing), ("encryption", party.encryption)):
            files[f"{label}-{purpose}.crt"] = _cert_pem(pair.certificate)
            files[f"{label}-{purpose}.key"] = _key_pem(pair.private_key)
    written = []
    for filename, data in files.items():
        path = directory / filename
        path.write_bytes(data)
        if filename.endswith(".key"):
            path.chmod(0o600)
        written.append(path)
    return tuple(written)


def generate_dev_pki(directory: Path, now: dt.datetime) -> DevPki:
    """Generate fresh (uncached) keys for a dev PKI and write it to `directory`."""
    ca = make_ca(now, key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    not_before, not_after = now - _BACKDATE, now + _LEAF_LIFETIME

    def fresh(name: str, orgnr: str, purpose: Purpose) -> KeyPair:
        return issue_certificate(
            ca,
            common_name=name,
            orgnr=orgnr,
            purpose=purpose,
            not_before=not_before,
            not_after=not_after,
            key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )

    def party(name: str, orgnr: str) -> DevParty:
        return DevParty(
            name=name,
            orgnr=orgnr,
            signing=fresh(name, orgnr, "signing"),
            encryption=fresh(name, orgnr, "encryption"),
        )

    pki = DevPki(
        ca=ca,
        crl=make_crl(ca, now),
        kpr=party("KPR Dev", DEV_KPR_ORGNR),
        municipality=party("Demo kommune", DEV_MUNICIPALITY_ORGNR),
    )
    write_dev_pki(directory, pki)
    return pki
