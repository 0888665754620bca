"""GET/POST/PATCH /api/v1/parties: the sender registry, for operators."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, Field
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError

from app.api.deps import Authenticated, Operator
from app.http_deps import DbSession
from app.models import Party, RegistryEntry
from app.parties import repository as repo
from app.parties.spec import (
    CertificateSpec,
    CpaSpec,
    PartySpecError,
    certificate_spec,
    make_party,
)
from app.statuses import CertificateUsage

router = APIRouter(prefix="/api/v1", tags=["parties"])

# HER-ids are positive and stored as BIGINT: anything larger is not an id, not a crash.
MAX_HER_ID = 2**63 - 1
HerId = Annotated[int, Path(gt=0, le=MAX_HER_ID, description="The party's HER-id")]


class CertificateOut(BaseModel):
    usage: str
    subject: str
    issuer: str
    serial: str
    sha256: str
    not_before: datetime
    not_after: datetime


class CpaOut(BaseModel):
    cpa_id: str
    service_actions: list[dict[str, str]]
    requires_signing: bool
    requires_encryption: bool


class PartyOut(BaseModel):
    her_id: int
    name: str
    orgnr: str | None
    kommuner: list[str]
    emails: list[str]
    certificates: list[CertificateOut]
    cpas: list[CpaOut]
    plaintext_allowed: bool
    hide_fid_kommuner: list[str] = Field(
        default=[], description="municipalities whose error list shows no Person-ID (fid)"
    )
    source: str = Field(
        default="manual", description="manual (CLI/API), import (files) or ar (NHN's registries)"
    )
    registry_fetched_at: datetime | None = Field(
        default=None, description="when NHN's registries were last asked about the HER-id"
    )
    registry_expires_at: datetime | None = Field(
        default=None, description="until when that answer is used without asking again"
    )


class PartyIn(BaseModel):
    her_id: int = Field(gt=0, le=MAX_HER_ID)
    name: str = Field(min_length=1, max_length=200)
    orgnr: str | None = None
    kommuner: list[str] = []
    emails: list[str] = []
    signing_certificate: str | None = Field(default=None, description="PEM")
    encryption_certificate: str | None = Field(default=None, description="PEM")
    cpa_ids: list[str] = []
    plaintext_allowed: bool = False


class PartyPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    orgnr: str | None = None
    kommuner: list[str] | None = None
    emails: list[str] | None = None
    signing_certificate: str | None = None
    encryption_certificate: str | None = None
    cpa_ids: list[str] | None = None
    plaintext_allowed: bool | None = None
    hide_fid_kommuner: list[str] | None = Field(
        default=None,
        description="the party's municipalities whose error list withholds fid (replaces)",
    )


class WhoAmI(BaseModel):
    name: str
    role: str
    kommune_nr: str | None


def _registry(p: Party) -> RegistryEntry | None:
    """The registry entry when loaded (a party just made in this session has none loaded)."""
    return None if "registry_entry" in sa_inspect(p).unloaded else p.registry_entry


def party_out(p: Party) -> PartyOut:
    entry = _registry(p)
    return PartyOut(
        her_id=p.her_id,
        name=p.name,
        orgnr=p.orgnr,
        kommuner=[k.kommune_nr for k in p.kommuner],
        emails=[c.email for c in p.contacts],
        certificates=[
            CertificateOut(
                usage=c.usage,
                subject=c.subject,
                issuer=c.issuer,
                serial=c.serial,
                sha256=c.sha256,
                not_before=c.not_before,
                not_after=c.not_after,
            )
            for c in p.certificates
        ],
        cpas=[
            CpaOut(
                cpa_id=c.cpa_id,
                service_actions=c.service_actions,
                requires_signing=c.requires_signing,
                requires_encryption=c.requires_encryption,
            )
            for c in p.cpas
        ],
        plaintext_allowed=p.plaintext_allowed,
        hide_fid_kommuner=[k.kommune_nr for k in p.kommuner if k.hide_fid],
        source=p.source,
        registry_fetched_at=entry.fetched_at if entry is not None else None,
        registry_expires_at=entry.expires_at if entry is not None else None,
    )


def _certs(signing: str | None, encryption: str | None) -> tuple[CertificateSpec, ...]:
    out = []
    if signing:
        out.append(certificate_spec(signing, CertificateUsage.SIGNING))
    if encryption:
        out.append(certificate_spec(encryption, CertificateUsage.ENCRYPTION))
    return tuple(out)


@router.get("/whoami", response_model=WhoAmI, tags=["auth"])
async def whoami(who: Authenticated) -> WhoAmI:
    """The caller's token name and role."""
    return WhoAmI(name=who.name, role=who.role, kommune_nr=who.kommune_nr)


@router.get("/parties", response_model=list[PartyOut])
async def list_parties(session: DbSession, _who: Operator) -> list[PartyOut]:
    return [party_out(p) for p in await repo.list_parties(session)]


@router.get("/parties/{her_id}", response_model=PartyOut)
async def get_party(her_id: HerId, session: DbSession, _who: Operator) -> PartyOut:
    party = await repo.get_party(session, her_id)
    if party is None:
        raise HTTPException(404, f"no party with HER-id {her_id}")
    return party_out(party)


@router.post("/parties", response_model=PartyOut, status_code=201)
async def create_party(body: PartyIn, session: DbSession, _who: Operator) -> PartyOut:
    if await repo.get_party(session, body.her_id) is not None:
        raise HTTPException(409, f"party HER-id {body.her_id} exists; use PATCH to change it")
    try:
        spec = make_party(
            body.her_id,
            body.name,
            body.orgnr,
            body.kommuner,
            body.emails,
            _certs(body.signing_certificate, body.encryption_certificate),
            tuple(CpaSpec(cpa_id=c) for c in body.cpa_ids),
            body.plaintext_allowed,
            source="api",
        )
    except PartySpecError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        party, _ = await repo.upsert_party(session, spec)
        await session.commit()
    except IntegrityError:  # created by someone else in the meantime
        raise HTTPException(409, f"party HER-id {body.her_id} exists; use PATCH") from None
    return party_out(party)


@router.patch("/parties/{her_id}", response_model=PartyOut)
async def patch_party(
    her_id: HerId, body: PartyPatch, session: DbSession, _who: Operator
) -> PartyOut:
    """Add to a party's lists and change its scalar fields."""
    party = await repo.get_party(session, her_id)
    if party is None:
        raise HTTPException(404, f"no party with HER-id {her_id}")
    try:
        spec = make_party(
            her_id,
            body.name or party.name,
            body.orgnr if body.orgnr is not None else party.orgnr,
            body.kommuner or [],
            body.emails or [],
            _certs(body.signing_certificate, body.encryption_certificate),
            tuple(CpaSpec(cpa_id=c) for c in body.cpa_ids or []),
            party.plaintext_allowed if body.plaintext_allowed is None else body.plaintext_allowed,
            source="api",
        )
    except PartySpecError as exc:
        raise HTTPException(422, str(exc)) from None
    party, _ = await repo.upsert_party(session, spec)
    if body.hide_fid_kommuner is not None:
        unknown = set(body.hide_fid_kommuner) - {k.kommune_nr for k in party.kommuner}
        if unknown:
            raise HTTPException(422, f"not this party's municipalities: {sorted(unknown)}")
        for k in party.kommuner:
            k.hide_fid = k.kommune_nr in body.hide_fid_kommuner
    await session.commit()
    return party_out(party)
