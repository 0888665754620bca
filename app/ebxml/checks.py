"""Pure transport checks on a parsed header, with everything they depend on passed in.

Registry checks (From registered, CPAId, Service/Action, RefToMessageId, duplicates) need the
database and are done by the intake service with the rules in `app.ebxml.rules`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from app.core.cid import normalize_cid
from app.core.findings import Finding, Rule
from app.ebxml import rules
from app.ebxml.envelope import EbmsHeader
from app.ebxml.mime import MimeMessage

_MH = "/SOAP:Envelope/SOAP:Header/eb:MessageHeader"
_MANIFEST = "/SOAP:Envelope/SOAP:Body/eb:Manifest"


@dataclass(frozen=True, slots=True)
class Receiver:
    """Which of our addresses the message came to."""

    her_id: str
    environment: str  # the tag configured for that address: pilot | test | production


@dataclass(frozen=True, slots=True)
class HeaderCheck:
    receiver: Receiver | None
    findings: tuple[Finding, ...]


def _f(rule_: Rule, location: str, detail: str) -> Finding:
    return Finding(rule=rule_, location=location, detail=detail)


def check_receiver(
    header: EbmsHeader, receivers: Mapping[str, str]
) -> tuple[Receiver | None, tuple[Finding, ...]]:
    """The To HER-id must be one of ours. `receivers` maps HER-id -> environment tag."""
    for her_id in header.to_party.her_ids:
        if her_id in receivers:
            return Receiver(her_id, receivers[her_id]), ()
    given = ", ".join(header.to_party.her_ids) or 'ingen PartyId med eb:type="HER"'
    return None, (
        _f(
            rules.TO_UNKNOWN,
            f"{_MH}/eb:To/eb:PartyId",
            f"Mottaker-HER-id ({given[:120]}) er ikke en adresse denne tjenesten tar imot "
            "meldinger for. Kontroller mottakerens HER-id i Adresseregisteret.",
        ),
    )


def check_time_to_live(header: EbmsHeader, now: datetime) -> tuple[Finding, ...]:
    """TimeToLive, when given, must not have passed at `now` (timezone-aware)."""
    ttl = header.time_to_live
    if ttl is None or ttl >= now:
        return ()
    return (
        _f(
            rules.TTL_EXPIRED,
            f"{_MH}/eb:MessageData/eb:TimeToLive",
            f"TimeToLive ({ttl.isoformat()}) var utløpt da meldingen kom fram "
            f"({now.isoformat(timespec='seconds')}). Send meldingen på nytt med ny MessageId "
            "og en senere TimeToLive.",
        ),
    )


def resolve_cid(href: str) -> str | None:
    """The Content-ID a `cid:` URL names (RFC 2392: percent-decoded), or None if not cid:."""
    if href.strip()[:4].lower() != "cid:":
        return None
    return normalize_cid(href)


def check_manifest(
    header: EbmsHeader, mime: MimeMessage, *, require_payload: bool = True
) -> tuple[Finding, ...]:
    """Every Manifest reference is a cid: to a part; every part is referenced.

    Decision: an attachment the Manifest does not reference is an error. The envelope
    signature covers the parts through their Manifest/ds:Reference entries, so an unreferenced
    part is content that nobody vouches for, and it would never be processed.
    `require_payload` (for business messages) asks for at least one reference.
    """
    refs = _manifest_references(header, mime)
    unreferenced = tuple(
        _f(
            rules.PART_UNREFERENCED,
            f"MIME-del <{att.content_id[:100]}>",
            f"MIME-delen med Content-ID <{att.content_id[:100]}> er ikke referert fra "
            'eb:Manifest. Referer delen med eb:Reference xlink:href="cid:..." eller '
            "fjern den.",
        )
        for att in mime.attachments
        if att.content_id not in refs.referenced
    )
    missing: tuple[Finding, ...] = ()
    if require_payload and not header.is_signal and not header.manifest:
        missing = (
            _f(
                rules.PAYLOAD_MISSING,
                _MANIFEST,
                "Meldingen har ingen eb:Manifest/eb:Reference og dermed ingen nyttelast. "
                "Legg den krypterte meldingen ved som MIME-del og referer den fra eb:Manifest.",
            ),
        )
    return (*refs.findings, *unreferenced, *missing)


@dataclass(frozen=True, slots=True, kw_only=True)
class _ManifestReferences:
    referenced: frozenset[str]  # the Content-IDs the Manifest names, normalised
    findings: tuple[Finding, ...]


def _manifest_references(header: EbmsHeader, mime: MimeMessage) -> _ManifestReferences:
    """Each eb:Reference: a cid: URL, to a part that exists, and no part twice."""
    findings: list[Finding] = []
    referenced: set[str] = set()
    for n, ref in enumerate(header.manifest, start=1):
        loc = f"{_MANIFEST}/eb:Reference[{n}]/@xlink:href"
        cid = resolve_cid(ref.href)
        if cid is None:
            findings.append(
                _f(
                    rules.MANIFEST_HREF_UNSUPPORTED,
                    loc,
                    f"eb:Reference nr. {n} har xlink:href '{ref.href[:100]}'. Nyttelasten "
                    "skal ligge i en MIME-del og refereres med cid:<Content-ID>.",
                )
            )
        elif cid in referenced:
            findings.append(
                _f(
                    rules.MANIFEST_REF_DUPLICATE,
                    loc,
                    f"eb:Reference nr. {n} peker på cid:{cid[:100]}, som en tidligere "
                    "eb:Reference allerede peker på. Referer hver MIME-del én gang.",
                )
            )
        else:
            referenced.add(cid)
            if mime.attachment(cid) is None:
                findings.append(
                    _f(
                        rules.MANIFEST_CID_UNRESOLVED,
                        loc,
                        f"eb:Reference nr. {n} peker på cid:{cid[:100]}, men meldingen har "
                        "ingen MIME-del med den Content-ID-en. Legg ved delen eller rett "
                        "referansen.",
                    )
                )
    return _ManifestReferences(referenced=frozenset(referenced), findings=tuple(findings))


def check_header(
    header: EbmsHeader,
    mime: MimeMessage,
    *,
    receivers: Mapping[str, str],
    now: datetime,
    require_payload: bool = True,
) -> HeaderCheck:
    """All pure transport checks of one received message."""
    receiver, to_findings = check_receiver(header, receivers)
    findings = (
        *to_findings,
        *check_time_to_live(header, now),
        *check_manifest(header, mime, require_payload=require_payload),
    )
    return HeaderCheck(receiver, tuple(findings))
