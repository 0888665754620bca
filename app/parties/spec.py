"""Party specifications read from the CLI, CSV/JSON exports of AR entries and real CPA files.

Pure: bytes in, frozen dataclasses out. The repository writes them to the database.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from lxml import etree
from stdnum.no import orgnr as stdnum_orgnr

from app.core.xmlparse import XmlRejected, parse_xml
from app.parties.channels import CPA_NS, ReplyChannels, read_reply_channels
from app.security.keys import fully_parsed
from app.statuses import CertificateUsage

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
_KOMMUNE = re.compile(r"^\d{4}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class PartySpecError(ValueError):
    """An import row or CLI argument that cannot become a party; the message says which."""


@dataclass(frozen=True, slots=True)
class CertificateSpec:
    usage: str  # signing | encryption
    pem: str
    sha256: str
    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True, slots=True)
class CpaSpec:
    cpa_id: str
    service_actions: tuple[tuple[str, str], ...] = ()
    requires_signing: bool = True
    requires_encryption: bool = True
    # how the party wants to be answered (issue 26); None: not read from a CPA
    reply_channels: ReplyChannels | None = None


@dataclass(frozen=True, slots=True)
class ContactSpec:
    email: str
    name: str | None = None
    role: str = "innsendingsansvarlig"


@dataclass(frozen=True, slots=True)
class PartySpec:
    her_id: int
    name: str
    orgnr: str | None = None
    kommuner: tuple[str, ...] = ()
    contacts: tuple[ContactSpec, ...] = ()
    certificates: tuple[CertificateSpec, ...] = ()
    cpas: tuple[CpaSpec, ...] = ()
    plaintext_allowed: bool = False
    source: str = field(default="cli", compare=False)


def certificate_spec(data: bytes | str, usage: str) -> CertificateSpec:
    """Read a PEM or DER certificate (or a bare base64 body, as CPAs carry it)."""
    if usage not in tuple(CertificateUsage):
        raise PartySpecError(f"certificate usage must be signing or encryption, not '{usage}'")
    raw = data.encode() if isinstance(data, str) else data
    try:
        if b"-----BEGIN CERTIFICATE-----" in raw:
            cert = x509.load_pem_x509_certificate(raw)
        elif raw.lstrip()[:1] == b"0" or raw[:1] == b"\x30":
            cert = x509.load_der_x509_certificate(raw)
        else:
            import base64

            cert = x509.load_der_x509_certificate(base64.b64decode(b"".join(raw.split())))
        fully_parsed(cert)  # a damaged field raises now, not when the party is stored
    except (ValueError, x509.InvalidVersion) as exc:
        raise PartySpecError(f"not a readable X.509 certificate ({exc})") from None
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return CertificateSpec(
        usage=usage,
        pem=pem,
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def make_party(
    her_id: int | str,
    name: str,
    orgnr: str | None = None,
    kommuner: tuple[str, ...] | list[str] = (),
    emails: tuple[str, ...] | list[str] = (),
    certificates: tuple[CertificateSpec, ...] = (),
    cpas: tuple[CpaSpec, ...] = (),
    plaintext_allowed: bool = False,
    source: str = "cli",
) -> PartySpec:
    """Validate and build one party; every problem names the field and the value."""
    text = str(her_id).strip()
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 2**63:
        raise PartySpecError(f"HER-id '{her_id}' is not a positive integer (at most 19 digits)")
    if not name.strip():
        raise PartySpecError(f"HER-id {text}: name is empty")
    if orgnr is not None and orgnr.strip():
        orgnr = orgnr.strip()
        if not stdnum_orgnr.is_valid(orgnr):
            raise PartySpecError(f"HER-id {text}: organisation number '{orgnr}' is not valid")
    else:
        orgnr = None
    for k in kommuner:
        if not _KOMMUNE.match(k):
            raise PartySpecError(f"HER-id {text}: kommunenummer '{k}' is not 4 digits")
    for e in emails:
        if not _EMAIL.match(e):
            raise PartySpecError(f"HER-id {text}: '{e}' is not an e-mail address")
    return PartySpec(
        her_id=int(text),
        name=name.strip(),
        orgnr=orgnr,
        kommuner=tuple(dict.fromkeys(kommuner)),
        contacts=tuple(ContactSpec(email=e) for e in dict.fromkeys(emails)),
        certificates=certificates,
        cpas=tuple({c.cpa_id: c for c in cpas}.values()),  # one entry per CPA id
        plaintext_allowed=plaintext_allowed,
        source=source,
    )


def _split(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [p.strip() for p in re.split(r"[;,\s]+", str(value)) if p.strip()]


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "ja", "j")


def _from_mapping(row: dict[str, object], where: str) -> PartySpec:
    try:
        certs: list[CertificateSpec] = []
        for usage in CertificateUsage:
            pem = row.get(f"{usage}_certificate")
            if isinstance(pem, str) and pem.strip():
                certs.append(certificate_spec(pem, usage))
        cpas = tuple(CpaSpec(cpa_id=c) for c in _split(row.get("cpa_ids")))
        return make_party(
            her_id=str(row.get("her_id", "")),
            name=str(row.get("name", "")),
            orgnr=str(row["orgnr"]) if row.get("orgnr") else None,
            kommuner=_split(row.get("kommuner")),
            emails=_split(row.get("emails")),
            certificates=tuple(certs),
            cpas=cpas,
            plaintext_allowed=_truthy(row.get("plaintext_allowed", "")),
            source=where,
        )
    except PartySpecError as exc:
        raise PartySpecError(f"{where}: {exc}") from None


def read_parties(data: bytes, filename: str) -> list[PartySpec]:
    """Parties from a JSON list, a CSV export (header row) or a CPA XML file."""
    name = filename.lower()
    if name.endswith(".xml") or data.lstrip()[:1] == b"<":
        return read_cpa(data, filename)
    text = data.decode("utf-8-sig")
    if name.endswith(".json") or text.lstrip()[:1] in ("[", "{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PartySpecError(
                f"{filename}: not valid JSON ({exc.msg}, line {exc.lineno})"
            ) from None
        rows = parsed if isinstance(parsed, list) else [parsed]
        return [
            _from_mapping(r, f"{filename}[{i}]") for i, r in enumerate(rows) if isinstance(r, dict)
        ]
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "her_id" not in reader.fieldnames:
        raise PartySpecError(f"{filename}: CSV needs a header row with at least her_id,name")
    return [_from_mapping(dict(r), f"{filename}:{i + 2}") for i, r in enumerate(reader)]


def _attr(el: etree._Element, name: str) -> str | None:
    value = el.get(f"{{{CPA_NS}}}{name}")
    return value if value is not None else el.get(name)


def read_cpa(data: bytes, filename: str) -> list[PartySpec]:
    """Every PartyInfo of a CPA as a party, with its certificates, Service/Actions it can send,
    and whether the agreement demands signing and encryption."""
    root, cpa_id = _cpa_root(data, filename)
    parties = []
    for info in root.iterfind("tp:PartyInfo", _CPA_NSMAP):
        party = _cpa_party(info, cpa_id, filename)
        if party is not None:
            parties.append(party)
    if not parties:
        raise PartySpecError(f"{filename}: no PartyInfo with a HER PartyId")
    return parties


_CPA_NSMAP = {"tp": CPA_NS, "ds": DS_NS}


@dataclass(frozen=True, slots=True, kw_only=True)
class _CpaCertificates:
    """A PartyInfo's certificates by the use its references give them."""

    certificates: tuple[CertificateSpec, ...]
    signing_referenced: bool
    encryption_referenced: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class _CpaActions:
    """What a PartyInfo can send, and whether any of it demands signing or encryption."""

    service_actions: tuple[tuple[str, str], ...]
    non_repudiation: bool
    confidential: bool


def _cpa_root(data: bytes, filename: str) -> tuple[etree._Element, str]:
    """The CollaborationProtocolAgreement element and its cpaid."""
    try:
        root = parse_xml(data)
    except XmlRejected as exc:
        raise PartySpecError(f"{filename}: {exc}") from None
    if root.tag != f"{{{CPA_NS}}}CollaborationProtocolAgreement":
        raise PartySpecError(f"{filename}: not a CPA (root is {root.tag})")
    cpa_id = _attr(root, "cpaid")
    if not cpa_id:
        raise PartySpecError(f"{filename}: CPA without cpaid")
    return root, cpa_id


def _cpa_party(info: etree._Element, cpa_id: str, filename: str) -> PartySpec | None:
    """One PartyInfo as a party; None when it has no HER PartyId."""
    ids = {
        (_attr(p, "type") or ""): (p.text or "").strip()
        for p in info.iterfind("tp:PartyId", _CPA_NSMAP)
    }
    her = ids.get("HER")
    if not her:
        return None
    orgnr = ids.get("ENH") or ids.get("orgnummer")
    certs = _cpa_certificates(info)
    sends = _cpa_actions(info)
    cpa = CpaSpec(
        cpa_id=cpa_id,
        service_actions=sends.service_actions,
        requires_signing=sends.non_repudiation or certs.signing_referenced,
        requires_encryption=sends.confidential or certs.encryption_referenced,
        reply_channels=read_reply_channels(info),
    )
    try:
        return make_party(
            her_id=her,
            name=_attr(info, "partyName") or f"HER {her}",
            # test CPAs carry placeholder numbers; keep only a valid orgnr
            orgnr=orgnr if orgnr and stdnum_orgnr.is_valid(orgnr) else None,
            certificates=certs.certificates,
            cpas=(cpa,),
            source=filename,
        )
    except PartySpecError as exc:
        raise PartySpecError(f"{filename}: {exc}") from None


def _cpa_certificates(info: etree._Element) -> _CpaCertificates:
    ns = _CPA_NSMAP
    bodies: dict[str, str] = {}
    for cert in info.iterfind("tp:Certificate", ns):
        body = cert.findtext(".//ds:X509Certificate", namespaces=ns)
        cert_id = _attr(cert, "certId")
        if body and cert_id:
            bodies[cert_id] = body
    signing = {_attr(r, "certId") for r in info.iterfind(".//tp:SigningCertificateRef", ns)}
    encryption = {_attr(r, "certId") for r in info.iterfind(".//tp:EncryptionCertificateRef", ns)}
    encryption |= {_attr(r, "certId") for r in info.iterfind(".//tp:ApplicationCertificateRef", ns)}
    certs = []
    for cert_id, body in bodies.items():
        if cert_id in signing:
            certs.append(certificate_spec(body, CertificateUsage.SIGNING))
        if cert_id in encryption:
            certs.append(certificate_spec(body, CertificateUsage.ENCRYPTION))
    return _CpaCertificates(
        certificates=tuple(certs),
        signing_referenced=bool(signing),
        encryption_referenced=bool(encryption),
    )


def _cpa_actions(info: etree._Element) -> _CpaActions:
    ns = _CPA_NSMAP
    actions: list[tuple[str, str]] = []
    nonrep = confidential = False
    for binding in info.iterfind(".//tp:ServiceBinding", ns):
        service = (binding.findtext("tp:Service", namespaces=ns) or "").strip()
        for action in binding.iterfind("tp:CanSend/tp:ThisPartyActionBinding", ns):
            actions.append((service, _attr(action, "action") or ""))
            for chars in action.iterfind("tp:BusinessTransactionCharacteristics", ns):
                nonrep = nonrep or _attr(chars, "isNonRepudiationRequired") == "true"
                confidential = confidential or (_attr(chars, "isConfidential") or "none") != "none"
    return _CpaActions(
        service_actions=tuple(dict.fromkeys(actions)),
        non_repudiation=nonrep,
        confidential=confidential,
    )
