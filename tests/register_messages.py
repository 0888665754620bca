"""IPLOS messages with exactly the notifications a register test needs: every event kind,
typeID 1/2/3/9, bydel, temporary stops, corrections, annulments and events resent under a new
notification. The persons are synthetic (month + 80: accepted on pilot and test addresses)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

from app.dev.sample import h_nummer
from app.identifiers import IdKind, synthetic_orgnr, synthetic_person_id

NS = "http://www.npr.no/xmlstds/56_0_0_ipl"
EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
EVENT_KINDS = (
    "TjenesteStart",
    "MidlertidigStoppTil",
    "MidlertidigStoppFra",
    "TjenesteutforerEndret",
    "TjenesteSlutt",
)


@dataclass(frozen=True)
class Person:
    bruker_nr: str
    fid: str
    type_id: str = "1"
    bydel: str | None = None


def person(rng: random.Random, bruker_nr: str, type_id: str = "1") -> Person:
    """A synthetic person of the kind `type_id` names (9: a ddmmyy birth date)."""
    if type_id == "3":
        return Person(bruker_nr, h_nummer(rng), "3")
    kinds = {"1": IdKind.FNR, "2": IdKind.DNR}
    if type_id == "9":
        return Person(
            bruker_nr, f"{rng.randint(1, 28):02d}{rng.randint(1, 12):02d}4{rng.randint(0, 9)}", "9"
        )
    return Person(bruker_nr, synthetic_person_id(rng, kind=kinds[type_id]), type_id)


@dataclass(frozen=True)
class Event:
    kind: str
    tjeneste_id: str
    dato: str  # xs:date
    tjeneste_type: str = "20"
    guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    stopp_id: str | None = None  # midlertidigStoppID (the stop events)
    org_nr: str | None = None


@dataclass(frozen=True)
class Notif:
    lopenr: int
    person: Person
    events: tuple[Event, ...]
    status: str = "N"
    ref: str | None = None
    guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    forrige: str = EMPTY_GUID
    tid: str = "2018-11-20T11:59:00"


ORG = synthetic_orgnr(random.Random(7))


def event_xml(e: Event, p: Person, rng: random.Random) -> str:
    org = e.org_nr or (ORG if e.kind in ("TjenesteStart", "TjenesteutforerEndret") else None)
    attrs = {
        "tjenesteType": e.tjeneste_type,
        "hendelseRegTid": "2018-11-20T11:59:00",
        "hendelseDato": e.dato,
        "tjenesteID": e.tjeneste_id,
        "hendelseGUID": e.guid,
    }
    if org is not None:
        attrs["tjenesteOrgNr"] = org
    if e.stopp_id is not None:
        attrs["midlertidigStoppID"] = e.stopp_id
    bruker = {
        "pasientGUID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "brukerNr": p.bruker_nr,
        "fid": p.fid,
        "typeID": p.type_id,
    }
    if p.bydel is not None:
        bruker["bydel"] = p.bydel
    return f"<{e.kind} {_attrs(attrs)}><Bruker {_attrs(bruker)}/></{e.kind}>"


def melding_xml(
    notifications: list[Notif], kommune_nr: str = "0301", lokalident: str | None = "lok-1"
) -> bytes:
    rng = random.Random(1)
    # the schema's order of events within a notification
    order = {k: i for i, k in enumerate(EVENT_KINDS)}
    rows = []
    for n in notifications:
        attrs = {
            "statusNotifikasjon": n.status,
            "notifikasjonTid": n.tid,
            "notifikasjonGUID": n.guid,
            "notifikasjonForrigeGUID": n.forrige,
            "notifikasjonLopeNr": str(n.lopenr),
        }
        if n.ref is not None:
            attrs["notifikasjonRef"] = n.ref
        events = "".join(
            event_xml(e, n.person, rng) for e in sorted(n.events, key=lambda e: order[e.kind])
        )
        rows.append(f"<Notifikasjon {_attrs(attrs)}>{events}</Notifikasjon>")
    melding = {
        "versjon": "56.0.0",
        "meldingstype": "K",
        "leverandor": "Leverandør AS",
        "navnEPJ": "EPJ",
        "versjonEPJ": "1.0",
        "versjonUt": "2.3",
    }
    if lokalident is not None:
        melding["lokalident"] = lokalident
    contacts = "".join(
        f'<Kontaktperson kontPerson="K {t}" meldEpost1="k{t}@kommune.example" '
        f'typeKontaktperson="{t}"/>'
        for t in ("1", "15", "16", "17")
    )
    return (
        f'<Melding xmlns="{NS}" {_attrs(melding)}>{"".join(rows)}{contacts}'
        f'<Kommune kommuneNr="{kommune_nr}"/></Melding>'
    ).encode()


def _attrs(values: dict[str, str]) -> str:
    return " ".join(f"{k}={quoteattr(v)}" for k, v in values.items())
