"""What the registries say, checked like an import (orgnr, key usage, chain to a trust
anchor, the municipality against the year's list) and stored: the cache entry and, unless an
operator owns the party, the party itself (source `ar`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.no import orgnr as stdnum_orgnr

from app.kommuner import repository as kommune_repo
from app.models import Party, RegistryEntry
from app.parties import repository as party_repo
from app.parties.spec import CpaSpec, PartySpec, PartySpecError, certificate_spec, make_party
from app.registries.models import (
    E_SB_ASYNC,
    E_SB_ERROR,
    E_SB_SYNC,
    RegistryAnswerInvalid,
    RegistryParty,
    kommune_nr,
)
from app.security.certificates import build_chain, key_usage_names, may_sign, organization_number
from app.statuses import CertificateUsage


def _certificate(der: bytes | None, usage: str) -> x509.Certificate | None:
    if der is None:
        return None
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise RegistryAnswerInvalid(f"the {usage} certificate is not readable") from None


def _check_certificates(
    fetched: RegistryParty, anchors: Sequence[x509.Certificate], now: dt.datetime
) -> None:
    signing = _certificate(fetched.signing_der, "signing")
    encryption = _certificate(fetched.encryption_der, "encryption")
    if signing is None:
        raise RegistryAnswerInvalid("the AR has no signing certificate for the party")
    if not may_sign(signing):
        raise RegistryAnswerInvalid("the signing certificate may not be used for signatures")
    if encryption is not None:
        usage = key_usage_names(encryption)
        if usage is not None and not usage & {"key_encipherment", "data_encipherment"}:
            raise RegistryAnswerInvalid("the encryption certificate may not encrypt")
    for cert, usage_name in ((signing, "signing"), (encryption, "encryption")):
        if cert is not None and build_chain(cert, anchors, (), now) is None:
            raise RegistryAnswerInvalid(
                f"the {usage_name} certificate does not chain to a trust anchor"
            )
    orgnr = fetched.party.orgnr
    cert_orgnr = organization_number(signing)
    if orgnr is not None and cert_orgnr is not None and cert_orgnr != orgnr:
        raise RegistryAnswerInvalid("the signing certificate names another organisation")


def checked_spec(
    fetched: RegistryParty,
    anchors: Sequence[x509.Certificate],
    kommuner: frozenset[str],
    now: dt.datetime,
) -> PartySpec:
    """The party as an import would make it, or RegistryAnswerInvalid saying why not."""
    party = fetched.party
    if not (party.active and party.valid):
        raise RegistryAnswerInvalid("the AR says the party is not an active communication party")
    if party.orgnr is not None and not stdnum_orgnr.is_valid(party.orgnr):
        raise RegistryAnswerInvalid("the AR's organisation number is not valid")
    number = kommune_nr(party.municipality)
    if number is None or number not in kommuner:
        raise RegistryAnswerInvalid(
            f"municipality code {str(party.municipality)[:8]!r} is not in {now.year}'s list"
        )
    _check_certificates(fetched, anchors, now)
    certs = [certificate_spec(fetched.signing_der or b"", CertificateUsage.SIGNING)]
    if fetched.encryption_der is not None:
        certs.append(certificate_spec(fetched.encryption_der, CertificateUsage.ENCRYPTION))
    agreement = fetched.agreement
    cpas: tuple[CpaSpec, ...] = ()
    if agreement is not None and agreement.cpa_id is not None:
        cpas = (
            CpaSpec(
                cpa_id=agreement.cpa_id,
                service_actions=agreement.service_actions,
                requires_signing=agreement.requires_signing,
                requires_encryption=agreement.requires_encryption,
                reply_channels=agreement.reply_channels,
            ),
        )
    try:
        return make_party(
            party.her_id,
            party.name[:200],
            party.orgnr,
            [number],
            certificates=tuple(certs),
            cpas=cpas,
            source="ar",
        )
    except PartySpecError as exc:
        raise RegistryAnswerInvalid(str(exc)) from None


async def year_kommuner(session: AsyncSession, year: int) -> frozenset[str]:
    """The municipality numbers of `year`: the imported list, else the shipped one."""
    years = await kommune_repo.imported_years(session)
    return years.numbers(year)


@dataclass(frozen=True, slots=True)
class Stored:
    party: Party | None  # the party now registered for the HER-id (None: none)
    change: str  # added | updated | unchanged | kept (an operator's) | unknown | refused


async def store(
    session: AsyncSession,
    her_id: int,
    fetched: RegistryParty | None,
    spec: PartySpec | None,
    *,
    problem: str | None,
    now: dt.datetime,
    cache_seconds: int,
    adopt: bool = False,
) -> Stored:
    """The cache entry (known or not) and the party: added or updated from `spec` unless a
    person added it (manual, import) and `adopt` is not given."""
    entry = await session.get(RegistryEntry, her_id)
    if entry is None:
        entry = RegistryEntry(her_id=her_id, known=False, fetched_at=now, expires_at=now)
        session.add(entry)
    entry.known = fetched is not None and spec is not None
    entry.fetched_at, entry.expires_at = now, now + dt.timedelta(seconds=cache_seconds)
    entry.data = fetched.to_json() if fetched is not None else None
    addresses = fetched.party.addresses if fetched is not None else {}
    entry.async_queue = (addresses.get(E_SB_ASYNC) or "")[:300] or None
    entry.error_queue = (addresses.get(E_SB_ERROR) or "")[:300] or None
    entry.sync_queue = (addresses.get(E_SB_SYNC) or "")[:300] or None
    entry.problem = problem[:300] if problem else None
    existing = await party_repo.get_party(session, her_id)
    if spec is None:
        await session.flush()
        return Stored(existing, "unknown" if problem is None else "refused")
    if existing is not None and existing.source != "ar" and not adopt:
        await session.flush()
        return Stored(existing, "kept")
    before = _fingerprint(existing)
    party, created = await party_repo.upsert_party(session, spec)
    change = "added" if created else ("unchanged" if _fingerprint(party) == before else "updated")
    return Stored(party, change)


def _fingerprint(party: Party | None) -> tuple[object, ...]:
    if party is None:
        return ()
    return (
        party.name,
        party.orgnr,
        party.source,
        tuple(k.kommune_nr for k in party.kommuner),
        tuple(sorted(c.sha256 for c in party.certificates)),
        tuple(c.cpa_id for c in party.cpas),
    )
