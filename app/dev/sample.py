"""A generator of synthetic XPR(ipl) 56.0.0 messages, valid or with deliberate faults.

Every person identifier is a synthetic test identity (month + 80) with valid check digits:
no real person's number is ever written. Streamed to a binary file object with a fixed
memory footprint, so 100 000 notifications cost a few seconds and little memory.

Faults are rule ids (`RULES`); each breaks only that rule, in the last notification (or in
the message parts the rule is about), so validating the sample with `fault_context` yields
exactly one finding of that rule. A few need something outside the message: IPL-GUID-KNOWN
uses `KNOWN_GUID` and IPL-HENDELSE-GUID-KNOWN `KNOWN_HENDELSE_GUID` (put them in the
history), IPL-KOMMUNE-NOT-ALLOWED adds municipality
`FOREIGN_KOMMUNE`, IPL-KOMMUNE-YEAR adds `NEW_KOMMUNE_2024` (allowed; not in the lists
before 2024), IPL-FID-SYNTHETIC needs a production context (then the other
notifications carry birth dates, typeID 9), and the calendar faults date the whole message
one (late) or two (after the correction deadline) years before `year`.
IPL-ALL-DROPPED breaks every notification (each with IPL-XSD-ROW, listed in `COMPANIONS`).

`SCENARIOS` are faults that are no rule: input the standard allows that an EPJ really sends
and that the service once lost (a retired service type in a 2018 event, two events in one
notification, a brukerNr of digits, ...). Each yields the findings listed in `SCENARIOS`.
"""

from __future__ import annotations

import datetime
import io
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO
from xml.sax.saxutils import quoteattr

from app.content.calendar import ReportingCalendar, ReportingYear
from app.content.iplos.codes import NS
from app.content.iplos.rules import RULES_BY_ID
from app.content.model import EMPTY_GUID, ContentContext, IplosHistory, StoredNotification
from app.identifiers import (
    IdKind,
    first_check_digits,
    second_check_digit,
    synthetic_orgnr,
    synthetic_person_id,
)

KNOWN_GUID = "0a0a0a0a-0a0a-4a0a-8a0a-0a0a0a0a0a0a"
# an event KPR holds under another notification (IPL-HENDELSE-GUID-KNOWN)
KNOWN_HENDELSE_GUID = "0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b"
# Findings a fault brings besides its own rule.
COMPANIONS: dict[str, tuple[str, ...]] = {
    "IPL-ALL-DROPPED": ("IPL-XSD-ROW",),
    # a service of a retired type ended in 2021, in a sample extracted in 2018
    "IPL-TJENESTETYPE-START-UNKNOWN": ("IPL-HENDELSEDATO-FUTURE",),
}
# Scenario -> the rule ids its sample yields under `fault_context` (in order).
SCENARIOS: dict[str, tuple[str, ...]] = {
    "retired-type-in-time": (),  # tjenesteType 6 for an event in 2018, when it was valid
    "two-events": (),  # TjenesteStart and TjenesteSlutt in one notification
    "tz-date": (),  # every hendelseDato with a time zone (2018-01-03+01:00), as xs:date allows
    "dnr-as-typeid-1": ("IPL-TYPEID-KIND",),  # a valid D-nummer sent with typeID 1
    "hnr-individual-750": (),  # an H-nummer with individual number 750-899, year >= 40
    "fnr-2032": (),  # FNR_2032: a 2032-style number the old century table cannot place
    "orgnr-zeros": ("IPL-ORGNR-INVALID",),  # tjenesteOrgNr 000000000 (mod 11 holds)
    "orgnr-first-digit": ("IPL-ORGNR-INVALID",),  # a valid checksum, first digit not 8/9
    "epost-trailing-space": (),  # meldEpost1 "adresse@kommune.example "
    "kontakttype-leading-zero": (),  # typeKontaktperson "01"
    "brukernr-digits": ("IPL-FID-INVALID",),  # a 12-digit brukerNr on a row kept with an error
    # issue 21: values of another kind than typeID says, kept as the kind they show
    "fnr-as-typeid-9": ("IPL-TYPEID-KIND",),  # a valid fødselsnummer sent with typeID 9
    "birthdate-as-typeid-1": ("IPL-TYPEID-KIND",),  # a ddmmyy birth date sent with typeID 1
    "typeid-leading-zero": ("IPL-CODE-LEADING-ZERO",),  # typeID "01"
    "uttakdato": ("IPL-XSD-IGNORED",),  # Melding/@uttakDato, as older extractions write it
}
FOREIGN_KOMMUNE = "9998"
# Halden's number from 2024 (3001 before, 0101 before 2020): IPL-KOMMUNE-YEAR adds it to a
# message of an earlier year, and `fault_context` allows it
NEW_KOMMUNE_2024 = "3101"
# Synthetic (month + 80) and of the 2032 kind: a first check digit only the 2032 rule allows,
# individual number 800 with year 75, which the old century table does not place. Born
# 15 June 1975 (the latest such date before any event of the sample).
FNR_2032 = "15867580074"
FIRST_PHASE_TYPES = ("18", "19", "20", "21", "29")
MSGHEAD_NS = "http://www.kith.no/xmlstds/msghead/2006-05-24"

# Faults that need a second notification to break.
_NEEDS_TWO = frozenset(
    {
        "IPL-GUID-UNIQUE",
        "IPL-LOPENR-GAP",
        "IPL-LOPENR-ORDER",
        "IPL-BRUKERNR-STABLE",
        "IPL-BRUKERNR-CHANGED",
        "IPL-BRUKERNR-ID-KIND",
    }
)
# Faults that live in a notification.
_IN_NOTIFICATION = frozenset(
    {
        "IPL-GUID-UNIQUE",
        "IPL-FID-MISSING",
        "IPL-EVENT-COUNT",
        "IPL-EVENT-PERSON",
        "IPL-XSD-VALUE",
        "IPL-CODE-LEADING-ZERO",
        "IPL-STATUS-CODE",
        "IPL-REF-MISSING",
        "IPL-REF-UNKNOWN",
        "IPL-GUID-KNOWN",
        "IPL-HENDELSE-GUID-KNOWN",
        "IPL-FORRIGE-CHAIN",
        "IPL-LOPENR-FORMAT",
        "IPL-LOPENR-ORDER",
        "IPL-LOPENR-GAP",
        "IPL-TJENESTETYPE-CODE",
        "IPL-TJENESTETYPE-START-UNKNOWN",
        "IPL-ORGNR-REQUIRED",
        "IPL-ORGNR-INVALID",
        "IPL-TYPEID-CODE",
        "IPL-FID-INVALID",
        "IPL-FID-DATE",
        "IPL-FID-SYNTHETIC",
        "IPL-BRUKERNR-FORMAT",
        "IPL-BRUKERNR-STABLE",
        "IPL-BRUKERNR-CHANGED",
        "IPL-BRUKERNR-ID-KIND",
        "IPL-BYDEL-FORMAT",
        "IPL-HENDELSEDATO-RANGE",
        "IPL-CALENDAR-LATE",
        "IPL-CALENDAR-AFTER-CORRECTION",
    }
)


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _bad_check_digit(fid: str) -> str:
    """The same number with a first check digit that neither rule accepts."""
    allowed = first_check_digits(fid)
    for digit in range(10):
        if digit not in allowed:
            return fid[:9] + str(digit) + fid[10:]
    raise AssertionError("unreachable: at most four digits are allowed")


def _bad_orgnr(good: str) -> str:
    return good[:8] + str((int(good[8]) + 1) % 10)


def h_nummer(rng: random.Random) -> str:
    """An H-nummer (month + 40) born 1950-1999 with an individual number from 750 to 899, as
    hospitals assign them (made up here; H-numbers have no synthetic variant)."""
    while True:
        base = (
            f"{rng.randrange(1, 29):02d}{rng.randrange(1, 13) + 40:02d}"
            f"{rng.randrange(50, 100):02d}{rng.randrange(750, 900):03d}"
        )
        digits = first_check_digits(base, rule_2032=False)
        if not digits:
            continue
        ten = base + str(digits[0])
        k2 = second_check_digit(ten)
        if k2 is not None:
            return ten + str(k2)


def write_sample(
    out: BinaryIO,
    notifications: int,
    kommune_nr: str,
    faults: Sequence[str] = (),
    seed: int = 0,
    *,
    year: int = 2018,
    start_lopenr: int = 1,
    previous_guid: str = EMPTY_GUID,
) -> None:
    """Stream a sample `Melding` to `out` (see `build_sample`)."""
    fault = _checked_faults(faults, notifications)
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    out.write(_melding_start(fault, seed).encode())
    plan = _Plan(
        fault=fault,
        seed=seed,
        year=year,
        report_year=_report_year(year, fault),
        org=synthetic_orgnr(rng),
        start_lopenr=start_lopenr,
        last=notifications - 1,
    )
    _write_notifications(out, plan, rng, notifications, previous_guid)
    out.write(_contacts_xml(fault).encode())
    out.write(_kommuner_xml(kommune_nr, fault).encode())
    out.write(b"</Melding>\n")
    if "IPL-NOT-XML" in fault:
        out.write(b"<Melding>")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    """What every notification of one sample shares."""

    fault: frozenset[str]
    seed: int
    year: int
    report_year: int
    org: str
    start_lopenr: int
    last: int  # index of the last notification, where a fault goes


@dataclass(frozen=True, slots=True, kw_only=True)
class _Chain:
    """What a notification takes from those written before it."""

    prev: str
    before_prev: str
    first_guid: str = ""
    first_bruker: str = ""
    first_fid: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Row:
    """One notification's place: its index and whether the faults apply to it."""

    i: int
    is_last: bool
    fault: frozenset[str]

    def breaks(self, name: str) -> bool:
        return self.is_last and name in self.fault


@dataclass(frozen=True, slots=True, kw_only=True)
class _Identity:
    guid: str
    status: str
    ref: str  # the notifikasjonRef attribute, or ""
    forrige: str
    lopenr: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Dates:
    day: datetime.date
    reg: str  # hendelseRegTid
    hendelse_dato: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Service:
    event: str
    tjeneste_type: str
    org_attr: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Person:
    bruker_nr: str
    type_id: str
    fid: str
    drawn_fid: str  # the unique number drawn for this row, before any fault replaced it


@dataclass(frozen=True, slots=True, kw_only=True)
class _Written:
    text: str
    guid: str
    person: _Person


def _report_year(year: int, fault: frozenset[str]) -> int:
    # the calendar faults: the message reports for a year whose deadline (or correction
    # deadline) has passed on 1 February of `year`
    if "IPL-CALENDAR-AFTER-CORRECTION" in fault:
        return year - 2
    return year - 1 if "IPL-CALENDAR-LATE" in fault else year


def _checked_faults(faults: Sequence[str], notifications: int) -> frozenset[str]:
    unknown = [f for f in faults if f not in RULES_BY_ID and f not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown fault(s): {', '.join(unknown)}")
    fault = frozenset(faults)
    if fault & _NEEDS_TWO and notifications < 2:
        raise ValueError("these faults need at least two notifications")
    if fault & _IN_NOTIFICATION and notifications < 1:
        raise ValueError("these faults need at least one notification")
    return fault


def _melding_start(fault: frozenset[str], seed: int) -> str:
    leverandor = "Leverandør AS" + ("x" * 100 if "IPL-TEXT-LENGTH" in fault else "")
    # meldingstype is fixed "K" (handling 1 for the schema's fixed value): the whole message
    meldingstype = "X" if "IPL-XSD" in fault else "K"
    uttak = ' uttakDato="2018-01-01"' if "uttakdato" in fault else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Melding xmlns="{NS}" versjon="56.0.0" meldingstype="{meldingstype}" '
        f'leverandor={quoteattr(leverandor)} navnEPJ="Syntetisk EPJ" versjonEPJ="1.0" '
        f'versjonUt="1.0" lokalident="sample-{seed}"{uttak}>\n'
    )


def _write_notifications(
    out: BinaryIO, plan: _Plan, rng: random.Random, notifications: int, previous_guid: str
) -> None:
    """The notifications, written in chunks: memory stays flat for 100 000 of them."""
    chain = _Chain(prev=previous_guid, before_prev=previous_guid)
    used_fids: set[str] = set()  # one number per person: brukerNr <-> fid stays stable
    buf: list[str] = []
    for i in range(notifications):
        row = _Row(i=i, is_last=i == plan.last or "IPL-ALL-DROPPED" in plan.fault, fault=plan.fault)
        written = _notification(plan, row, rng, chain, used_fids)
        used_fids.add(written.person.drawn_fid)
        buf.append(written.text)
        chain = _Chain(
            prev=written.guid,
            before_prev=chain.prev,
            first_guid=written.guid if i == 0 else chain.first_guid,
            first_bruker=written.person.bruker_nr if i == 0 else chain.first_bruker,
            first_fid=written.person.fid if i == 0 else chain.first_fid,
        )
        if len(buf) >= 1000:
            out.write("".join(buf).encode())
            buf.clear()
    out.write("".join(buf).encode())


def _notification(
    plan: _Plan, row: _Row, rng: random.Random, chain: _Chain, used_fids: set[str]
) -> _Written:
    # The order of the steps is the order of the random draws: a seed gives the same sample.
    ident = _identity(plan, row, rng, chain)
    dates = _dates(plan, row)
    service = _service(plan, row)
    person = _person(plan, row, rng, chain, used_fids, dates.day)
    bruker = _bruker_xml(row, rng, person)
    body = _events_xml(plan, row, rng, service, dates, bruker, person)
    tid = "2018-01-01" if row.breaks("IPL-XSD-IGNORED") else dates.reg
    text = (
        f'<Notifikasjon statusNotifikasjon="{ident.status}" notifikasjonTid="{tid}" '
        f'notifikasjonGUID="{ident.guid}" notifikasjonForrigeGUID="{ident.forrige}" '
        f'notifikasjonLopeNr="{ident.lopenr}"{ident.ref}>{body}</Notifikasjon>\n'
    )
    return _Written(text=text, guid=ident.guid, person=person)


def _identity(plan: _Plan, row: _Row, rng: random.Random, chain: _Chain) -> _Identity:
    """GUID, status, reference, forrige-GUID and løpenummer."""
    guid = _guid(rng)
    if row.breaks("IPL-GUID-UNIQUE"):
        # the same GUID written another way: the schema's exact-string check passes it
        guid = "{" + chain.first_guid.upper() + "}"
    if row.breaks("IPL-GUID-KNOWN"):
        guid = KNOWN_GUID
    if row.breaks("IPL-XSD-VALUE"):
        guid = guid.replace("-", "")  # written without hyphens: kept, keyed by its hash
    status, ref = "N", ""
    if row.breaks("IPL-STATUS-CODE"):
        status = "T"
    if row.breaks("IPL-REF-MISSING"):
        status = "M"
    if row.breaks("IPL-REF-UNKNOWN"):
        status, ref = "M", f' notifikasjonRef="{_guid(rng)}"'
    forrige = _guid(rng) if row.breaks("IPL-FORRIGE-CHAIN") else chain.prev
    lopenr = str(plan.start_lopenr + row.i)
    if row.breaks("IPL-LOPENR-FORMAT"):
        lopenr = f"L{lopenr}"
    if row.breaks("IPL-LOPENR-ORDER"):
        # the previous notification's number, chained to the one below it
        lopenr, forrige = str(plan.start_lopenr + row.i - 1), chain.before_prev
    if row.breaks("IPL-LOPENR-GAP"):
        lopenr = str(plan.start_lopenr + row.i + 1)  # one number skipped: no predecessor
    return _Identity(guid=guid, status=status, ref=ref, forrige=forrige, lopenr=lopenr)


def _dates(plan: _Plan, row: _Row) -> _Dates:
    day = datetime.date(plan.report_year, 1, 1) + datetime.timedelta(days=row.i % 28)
    reg = f"{day.isoformat()}T12:00:00"
    hendelse_dato = day.isoformat() + ("+01:00" if "tz-date" in plan.fault else "")
    if row.breaks("IPL-HENDELSEDATO-RANGE"):
        hendelse_dato = (day + datetime.timedelta(days=1)).isoformat()
    if row.breaks("IPL-TJENESTETYPE-START-UNKNOWN"):
        # a service of a retired type ended after the code's end (after the sample's
        # extraction too: see COMPANIONS)
        day = datetime.date(2021, 3, 1)
        reg, hendelse_dato = f"{day.isoformat()}T12:00:00", day.isoformat()
    if row.breaks("IPL-HENDELSEDATO-FUTURE"):
        # after the extraction (`fault_context`: 1 February), registered the same day
        day = datetime.date(plan.year, 6, 1)
        reg, hendelse_dato = f"{day.isoformat()}T12:00:00", day.isoformat()
    return _Dates(day=day, reg=reg, hendelse_dato=hendelse_dato)


def _service(plan: _Plan, row: _Row) -> _Service:
    event = "TjenesteStart"
    tjeneste_type = FIRST_PHASE_TYPES[row.i % len(FIRST_PHASE_TYPES)]
    if row.breaks("IPL-TJENESTETYPE-CODE"):
        tjeneste_type = "13"  # never a code of 9151
    if row.breaks("retired-type-in-time"):
        tjeneste_type = "6"
    if row.breaks("IPL-CODE-LEADING-ZERO"):
        tjeneste_type = "08"  # read as 8
    if row.breaks("IPL-TJENESTETYPE-START-UNKNOWN"):
        event, tjeneste_type = "TjenesteSlutt", "6"  # begun when? KPR does not know
    org_attr = f' tjenesteOrgNr="{plan.org}"' if row.i % 3 == 0 else ""
    if row.breaks("IPL-ORGNR-INVALID"):
        org_attr = f' tjenesteOrgNr="{_bad_orgnr(plan.org)}"'
    if row.breaks("IPL-ORGNR-REQUIRED"):
        event, org_attr = "TjenesteutforerEndret", f' tjenesteOrgNr="{_bad_orgnr(plan.org)}"'
    if row.breaks("orgnr-zeros"):
        org_attr = ' tjenesteOrgNr="000000000"'
    if row.breaks("orgnr-first-digit"):
        org_attr = ' tjenesteOrgNr="123456785"'
    return _Service(event=event, tjeneste_type=tjeneste_type, org_attr=org_attr)


def _person(
    plan: _Plan,
    row: _Row,
    rng: random.Random,
    chain: _Chain,
    used_fids: set[str],
    day: datetime.date,
) -> _Person:
    """brukerNr, typeID and fid: a fresh synthetic person unless a fault says otherwise."""
    i, brk = row.i, row.breaks
    bruker_nr, type_id = f"B{plan.seed:04d}{i:08d}", "1"
    drawn = synthetic_person_id(rng)
    while drawn in used_fids:
        drawn = synthetic_person_id(rng)
    fid = drawn
    if "IPL-FID-SYNTHETIC" in plan.fault and not row.is_last:
        type_id, fid = "9", f"{day.day:02d}{day.month:02d}{(1950 + i % 50) % 100:02d}"
    if brk("IPL-TYPEID-CODE"):
        type_id = "4"
    if brk("IPL-FID-INVALID") or brk("brukernr-digits"):
        fid = _bad_check_digit(fid)
    if brk("brukernr-digits"):
        bruker_nr = f"{100000000000 + plan.seed * 1000 + i}"
    if brk("IPL-TYPEID-KIND"):
        fid = synthetic_person_id(rng, kind=IdKind.DNR)
    if brk("dnr-as-typeid-1"):
        fid = synthetic_person_id(rng, kind=IdKind.DNR)
    if brk("hnr-individual-750"):
        type_id, fid = "3", h_nummer(rng)
    if brk("fnr-2032"):
        fid = FNR_2032

    if brk("fnr-as-typeid-9"):
        type_id = "9"
    if brk("birthdate-as-typeid-1"):
        fid = f"{day.day:02d}{day.month:02d}{(1950 + i % 50) % 100:02d}"
    if brk("typeid-leading-zero"):
        type_id = "01"
    if brk("IPL-FID-DATE"):
        type_id, fid = "9", "320199"
    if brk("IPL-BRUKERNR-FORMAT"):
        bruker_nr = "B" * 101
    if brk("IPL-BRUKERNR-STABLE"):
        bruker_nr = chain.first_bruker
    if brk("IPL-BRUKERNR-CHANGED"):
        fid = chain.first_fid
    if "IPL-BRUKERNR-ID-KIND" in plan.fault and i == 0:
        # the first person has a D-nummer; the last notification brings their
        # fødselsnummer under the same brukerNr
        type_id, fid = "2", synthetic_person_id(rng, kind=IdKind.DNR)
    if brk("IPL-BRUKERNR-ID-KIND"):
        bruker_nr = chain.first_bruker
    return _Person(bruker_nr=bruker_nr, type_id=type_id, fid=fid, drawn_fid=drawn)


def _bruker_xml(row: _Row, rng: random.Random, person: _Person) -> str:
    fid_attr = "" if row.breaks("IPL-FID-MISSING") else f' fid="{person.fid}"'
    if row.breaks("IPL-XSD-ROW") or row.breaks("IPL-ALL-DROPPED"):
        bruker_attr = ""  # brukerNr missing: Annotations handling 2, the row is dropped
    else:
        bruker_attr = f" brukerNr={quoteattr(person.bruker_nr)}"
    bydel = ' bydel="030101"' if row.i % 4 == 1 else ""
    if row.breaks("IPL-BYDEL-FORMAT"):
        bydel = ' bydel="1"'
    return (
        f'<Bruker pasientGUID="{_guid(rng)}"{bruker_attr}{fid_attr} '
        f'typeID="{person.type_id}"{bydel}/>'
    )


def _events_xml(
    plan: _Plan,
    row: _Row,
    rng: random.Random,
    service: _Service,
    dates: _Dates,
    bruker: str,
    person: _Person,
) -> str:
    """The notification's event (none, one, or a second one when a fault asks)."""
    tjeneste_id = f"T{plan.seed}-{row.i}"
    event, ttype = service.event, service.tjeneste_type
    hendelse_guid = _guid(rng)  # drawn always: a seed gives the same sample
    if row.breaks("IPL-HENDELSE-GUID-KNOWN"):
        hendelse_guid = KNOWN_HENDELSE_GUID
    body = (
        f'<{event} tjenesteType="{ttype}" hendelseRegTid="{dates.reg}"{service.org_attr} '
        f'hendelseDato="{dates.hendelse_dato}" tjenesteID="{tjeneste_id}" '
        f'hendelseGUID="{hendelse_guid}">{bruker}</{event}>'
    )
    if row.breaks("IPL-EVENT-COUNT"):
        body = ""
    if row.breaks("IPL-EVENT-PERSON"):
        other = bruker.replace(f"brukerNr={quoteattr(person.bruker_nr)}", 'brukerNr="B-annen"')
        body += _slutt_xml(rng, ttype, dates, tjeneste_id, other)
    if row.breaks("two-events"):
        body += _slutt_xml(rng, ttype, dates, tjeneste_id, bruker)
    return body


def _slutt_xml(
    rng: random.Random, tjeneste_type: str, dates: _Dates, tjeneste_id: str, bruker: str
) -> str:
    return (
        f'<TjenesteSlutt hendelseGUID="{_guid(rng)}" tjenesteType="{tjeneste_type}" '
        f'hendelseRegTid="{dates.reg}" hendelseDato="{dates.hendelse_dato}" '
        f'tjenesteID="{tjeneste_id}">{bruker}</TjenesteSlutt>'
    )


def _contacts_xml(fault: frozenset[str]) -> str:
    contacts: list[tuple[str, str, str, str | None]] = [
        ("1", "Teknisk Kontakt", "teknisk@kommune.example", "+47 99 99 99 99"),
        ("15", "EPJ Leverandør", "epj@leverandor.example", None),
        ("16", "IPLOS Kontakt", "iplos@kommune.example", "0047 22 22 22 22"),
        ("17", "Innsending Ansvarlig", "innsending@kommune.example", "22222222"),
    ]
    if "IPL-KONTAKT-MISSING" in fault:
        contacts = [c for c in contacts if c[0] != "16"]
    if "IPL-KONTAKT-TYPE" in fault:
        contacts.append(("99", "Ukjent Type", "ukjent@kommune.example", None))
    if "IPL-EPOST-FORMAT" in fault:
        contacts.append(("16", "Feil Epost", "ikke-en-adresse", None))
    if "IPL-TELEFON-FORMAT" in fault:
        contacts.append(("16", "Feil Telefon", "telefon@kommune.example", "123"))
    if "epost-trailing-space" in fault:
        contacts[-1] = ("17", "Innsending Ansvarlig", "innsending@kommune.example ", None)
    if "kontakttype-leading-zero" in fault:
        contacts[0] = ("01", *contacts[0][1:])
    return "".join(
        f"<Kontaktperson kontPerson={quoteattr(name)} meldEpost1={quoteattr(email)}"
        + (f" meldTelefon={quoteattr(phone)}" if phone else "")
        + f' typeKontaktperson="{ctype}"/>\n'
        for ctype, name, email, phone in contacts
    )


def _kommuner_xml(kommune_nr: str, fault: frozenset[str]) -> str:
    kommuner = [kommune_nr]
    if "IPL-KOMMUNE-UNIQUE" in fault:
        kommuner.append(kommune_nr)
    if "IPL-KOMMUNE-FORMAT" in fault:
        kommuner.append("301")
    if "IPL-KOMMUNE-NOT-ALLOWED" in fault:
        kommuner.append(FOREIGN_KOMMUNE)
    if "IPL-KOMMUNE-YEAR" in fault:
        kommuner.append(NEW_KOMMUNE_2024)
    return "".join(f"<Kommune kommuneNr={quoteattr(k)}/>\n" for k in kommuner)


def build_sample(
    notifications: int,
    kommune_nr: str,
    faults: Sequence[str] = (),
    seed: int = 0,
    *,
    year: int = 2018,
    start_lopenr: int = 1,
    previous_guid: str = EMPTY_GUID,
) -> bytes:
    """A synthetic XPR(ipl) 56.0.0 `Melding` with `notifications` TjenesteStart notifications
    (status N, first-phase service types, dates in January of `year`, løpenummer from
    `start_lopenr`, chained from `previous_guid`), deterministic for a `seed`. `faults` are
    rule ids, each breaking only that rule (see the module docstring)."""
    out = io.BytesIO()
    write_sample(
        out,
        notifications,
        kommune_nr,
        faults,
        seed,
        year=year,
        start_lopenr=start_lopenr,
        previous_guid=previous_guid,
    )
    return out.getvalue()


def fault_context(
    kommune_nr: str, faults: Sequence[str] = (), *, year: int = 2018
) -> ContentContext:
    """The context under which a sample built with the same arguments shows exactly its
    faults: synthetic identities allowed (unless IPL-FID-SYNTHETIC, which needs a production
    address), only `kommune_nr` allowed, `KNOWN_GUID` in the history (stored with other
    content), and `now` = 1 February of `year` with a standard calendar for `year` and the two
    years before, judged as production (the offline `validate`'s view)."""
    production = "IPL-FID-SYNTHETIC" in faults
    pilot = "IPL-CALENDAR-PILOT-WINDOW" in faults
    windows = (
        (ReportingYear(year - 3, datetime.date(year - 3, 11, 1), datetime.date(year - 3, 12, 31),
                       datetime.date(year - 2, 1, 15), datetime.date(year - 2, 3, 21)),)
        if pilot
        else ()
    )  # fmt: skip
    calendar = ReportingCalendar(
        windows
        + tuple(
            ReportingYear(y, None, None, datetime.date(y + 1, 1, 15), datetime.date(y + 1, 3, 21))
            for y in (year - 2, year - 1, year)
        )
    )
    now = datetime.datetime(year, 2, 1, 12, tzinfo=datetime.UTC)
    return ContentContext(
        now=now,
        extracted_at=now,
        allowed_kommuner=frozenset({kommune_nr})
        | ({NEW_KOMMUNE_2024} if "IPL-KOMMUNE-YEAR" in faults else set()),
        allow_synthetic="IPL-FID-SYNTHETIC" not in faults,
        history=IplosHistory(
            notifications={KNOWN_GUID: StoredNotification("N", None, "")},
            hendelser={KNOWN_HENDELSE_GUID: KNOWN_GUID},
        ),
        calendar=calendar,
        environment="production" if production else "pilot" if pilot else None,
    )


def wrap_in_msghead(
    melding: bytes,
    sender_her: int,
    receiver_her: int,
    msg_id: str,
    gen_date: datetime.datetime,
    *,
    sender_name: str = "Eksempel kommune",
    receiver_name: str = "Helsedirektoratet KPR",
    msg_type: str = "KPR_IPL",
    ack: bool = True,
) -> bytes:
    """Put a content document into a MsgHead v1.2 (unsigned; DOMAIN.md appendix). The
    content's XML declaration is dropped; it must be UTF-8."""
    body = melding.lstrip()
    if body.startswith(b"<?xml"):
        body = body[body.index(b"?>") + 2 :].lstrip()

    def org(name: str, her: int) -> str:
        return (
            f"<Organisation><OrganisationName>{_text(name)}</OrganisationName>"
            f"<Ident><Id>{her}</Id>"
            '<TypeId V="HER" S="2.16.578.1.12.4.1.1.9051" DN="HER-id"/></Ident>'
            "</Organisation>"
        )

    ack_el = '<Ack V="J" DN="Ja"/>' if ack else '<Ack V="N" DN="Nei"/>'
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<MsgHead xmlns="{MSGHEAD_NS}"><MsgInfo>'
        f'<Type V={quoteattr(msg_type)} DN="IPLOS-melding til KPR"/>'
        "<MIGversion>v1.2 2006-05-24</MIGversion>"
        f"<GenDate>{gen_date.isoformat(timespec='seconds')}</GenDate>"
        f"<MsgId>{_text(msg_id)}</MsgId>{ack_el}"
        f"<Sender>{org(sender_name, sender_her)}</Sender>"
        f"<Receiver>{org(receiver_name, receiver_her)}</Receiver>"
        "</MsgInfo><Document><RefDoc>"
        '<MsgType V="XML" DN="XML-instans"/><MimeType>text/xml</MimeType><Content>'
    )
    tail = "</Content></RefDoc></Document></MsgHead>\n"
    return head.encode() + body + tail.encode()


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
