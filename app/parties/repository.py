"""All SQL for the sender registry."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Party, PartyCertificate, PartyContact, PartyCpa, PartyKommune
from app.parties.spec import PartySpec


async def get_party(session: AsyncSession, her_id: int) -> Party | None:
    party: Party | None = await session.scalar(select(Party).where(Party.her_id == her_id))
    return party


async def list_parties(session: AsyncSession) -> list[Party]:
    return list(await session.scalars(select(Party).order_by(Party.her_id)))


async def upsert_party(session: AsyncSession, spec: PartySpec) -> tuple[Party, bool]:
    """Create the party or merge the spec into it (lists are added to, never silently
    dropped: removing a certificate or municipality is an explicit operator act).
    Returns (party, created)."""
    row = await _party_row(session, spec)
    _add_kommuner_and_contacts(row.party, spec)
    _add_certificates(row.party, spec)
    _merge_cpas(row.party, spec)
    await session.flush()
    return row.party, row.created


@dataclass(frozen=True, slots=True, kw_only=True)
class _PartyRow:
    party: Party
    created: bool


async def _party_row(session: AsyncSession, spec: PartySpec) -> _PartyRow:
    """The party's row, new or with the spec's scalar fields applied."""
    party = await get_party(session, spec.her_id)
    if party is None:
        party = Party(
            her_id=spec.her_id,
            name=spec.name,
            orgnr=spec.orgnr,
            plaintext_allowed=spec.plaintext_allowed,
            source=party_source(spec.source),
            kommuner=[],
            contacts=[],
            certificates=[],
            cpas=[],
        )
        session.add(party)
        return _PartyRow(party=party, created=True)
    party.name = spec.name
    party.orgnr = spec.orgnr or party.orgnr
    # explicit each time (CLI flag, import column): a later import can withdraw it
    party.plaintext_allowed = spec.plaintext_allowed
    party.source = party_source(spec.source)  # whoever wrote it last owns it
    return _PartyRow(party=party, created=False)


def party_source(spec_source: str) -> str:
    """The party's `source` column for a spec's origin: ar (the registries), manual (the CLI,
    the API, the dev PKI) or import (a file)."""
    if spec_source == "ar":
        return "ar"
    return "manual" if spec_source in ("cli", "api", "dev-pki") else "import"


def _add_kommuner_and_contacts(party: Party, spec: PartySpec) -> None:
    have_k = {k.kommune_nr for k in party.kommuner}
    party.kommuner.extend(PartyKommune(kommune_nr=k) for k in spec.kommuner if k not in have_k)
    have_c = {(c.email, c.role) for c in party.contacts}
    party.contacts.extend(
        PartyContact(email=c.email, name=c.name, role=c.role)
        for c in spec.contacts
        if (c.email, c.role) not in have_c
    )


def _add_certificates(party: Party, spec: PartySpec) -> None:
    have = {(c.usage, c.sha256) for c in party.certificates}
    party.certificates.extend(
        PartyCertificate(
            usage=c.usage,
            pem=c.pem,
            sha256=c.sha256,
            subject=c.subject,
            issuer=c.issuer,
            serial=c.serial,
            not_before=c.not_before,
            not_after=c.not_after,
        )
        for c in spec.certificates
        if (c.usage, c.sha256) not in have
    )


def _merge_cpas(party: Party, spec: PartySpec) -> None:
    """A known CPA gets the spec's requirements (and its Service/Actions and reply channels
    when it names any); a new one is added."""
    by_cpa = {c.cpa_id: c for c in party.cpas}
    for cpa in spec.cpas:
        actions = [{"service": s, "action": a} for s, a in cpa.service_actions]
        # from a CPA file or the registry's CPA; a spec without them keeps what is stored
        channels = cpa.reply_channels.as_json() if cpa.reply_channels is not None else None
        row = by_cpa.get(cpa.cpa_id)
        if row is None:
            party.cpas.append(
                PartyCpa(
                    cpa_id=cpa.cpa_id,
                    service_actions=actions,
                    requires_signing=cpa.requires_signing,
                    requires_encryption=cpa.requires_encryption,
                    reply_channels=channels,
                )
            )
            continue
        row.service_actions = actions or row.service_actions
        row.requires_signing = cpa.requires_signing
        row.requires_encryption = cpa.requires_encryption
        row.reply_channels = channels if channels is not None else row.reply_channels
