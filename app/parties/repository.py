"""All SQL for the sender registry."""

from __future__ import annotations

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
    party = await get_party(session, spec.her_id)
    created = party is None
    if party is None:
        party = Party(
            her_id=spec.her_id,
            name=spec.name,
            orgnr=spec.orgnr,
            plaintext_allowed=spec.plaintext_allowed,
            kommuner=[],
            contacts=[],
            certificates=[],
            cpas=[],
        )
        session.add(party)
    else:
        party.name = spec.name
        party.orgnr = spec.orgnr or party.orgnr
        # explicit each time (CLI flag, import column): a later import can withdraw it
        party.plaintext_allowed = spec.plaintext_allowed
    have_k = {k.kommune_nr for k in party.kommuner}
    party.kommuner.extend(PartyKommune(kommune_nr=k) for k in spec.kommuner if k not in have_k)
    have_c = {(c.email, c.role) for c in party.contacts}
    party.contacts.extend(
        PartyContact(email=c.email, name=c.name, role=c.role)
        for c in spec.contacts
        if (c.email, c.role) not in have_c
    )
    have_cert = {(c.usage, c.sha256) for c in party.certificates}
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
        if (c.usage, c.sha256) not in have_cert
    )
    by_cpa = {c.cpa_id: c for c in party.cpas}
    for cpa in spec.cpas:
        actions = [{"service": s, "action": a} for s, a in cpa.service_actions]
        if cpa.cpa_id in by_cpa:
            row = by_cpa[cpa.cpa_id]
            row.service_actions = actions or row.service_actions
            row.requires_signing = cpa.requires_signing
            row.requires_encryption = cpa.requires_encryption
        else:
            party.cpas.append(
                PartyCpa(
                    cpa_id=cpa.cpa_id,
                    service_actions=actions,
                    requires_signing=cpa.requires_signing,
                    requires_encryption=cpa.requires_encryption,
                )
            )
    await session.flush()
    return party, created
