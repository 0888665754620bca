"""A generator of synthetic XPR(ipl) 56.0.0 messages, valid or with deliberate faults.

Every person identifier is a synthetic test identity (month + 80) with valid check digits:
no real person's number is ever written. Streamed to a binary file object with a fixed
memory footprint, so 100 000 notifications cost a few seconds and little memory.

Faults are rule ids (`RULES`); each breaks only that rule, in the last notification (or in
the message parts the rule is about), so validating the sample with `fault_context` yields
exactly one finding of that rule. A few need something outside the message: IPL-GUID-KNOWN
uses `KNOWN_GUID` (put it in the history), IPL-KOMMUNE-NOT-ALLOWED adds municipality
`FOREIGN_KOMMUNE`, IPL-FID-SYNTHETIC needs a production context (then the other
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
from typing import BinaryIO
from xml.sax.saxutils import quoteattr

from app.content.calendar import ReportingCalendar, ReportingYear
from app.content.iplos.rules import RULES_BY_ID
from app.content.iplos.validate import NS
from app.content.model import EMPTY_GUID, ContentContext, IplosHistory, StoredNotification
from app.identifiers import (
    IdKind,
    first_check_digits,
    second_check_digit,
    synthetic_orgnr,
    synthetic_person_id,
)

KNOWN_GUID = "0a0a0a0a-0a0a-4a0a-8a0a-0a0a0a0a0a0a"
# Findings a fault brings besides its own rule.
COMPANIONS: dict[str, tuple[str, ...]] = {"IPL-ALL-DROPPED": ("IPL-XSD-ROW",)}
# Scenario -> the rule ids its sample yields under `fault_context` (in order).
SCENARIOS: dict[str, tuple[str, ...]] = {
    "retired-type-in-time": (),  # tjenesteType 6 for an event in 2018, when it was valid
    "two-events": (),  # TjenesteStart and TjenesteSlutt in one notification
    "tz-date": (),  # every hendelseDato with a time zone (2018-01-03+01:00), as xs:date allows
    "dnr-as-typeid-1": ("IPL-TYPEID-KIND",),  # a valid D-nummer sent with typeID 1
    "hnr-individual-750": (),  # an H-nummer with individual number 750-899, year >= 40
    "orgnr-zeros": ("IPL-ORGNR-INVALID",),  # tjenesteOrgNr 000000000 (mod 11 holds)
    "orgnr-first-digit": ("IPL-ORGNR-INVALID",),  # a valid checksum, first digit not 8/9
    "epost-trailing-space": (),  # meldEpost1 "adresse@kommune.example "
    "kontakttype-leading-zero": (),  # typeKontaktperson "01"
    "brukernr-digits": ("IPL-FID-INVALID",),  # a 12-digit brukerNr on a row that is dropped
}
FOREIGN_KOMMUNE = "9998"
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
        "IPL-STATUS-CODE",
        "IPL-REF-MISSING",
        "IPL-REF-UNKNOWN",
        "IPL-GUID-KNOWN",
        "IPL-FORRIGE-CHAIN",
        "IPL-LOPENR-FORMAT",
        "IPL-LOPENR-ORDER",
        "IPL-LOPENR-GAP",
        "IPL-TJENESTETYPE-CODE",
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


def _h_nummer(rng: random.Random) -> str:
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
    unknown = [f for f in faults if f not in RULES_BY_ID and f not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown fault(s): {', '.join(unknown)}")
    fault = frozenset(faults)
    if fault & _NEEDS_TWO and notifications < 2:
        raise ValueError("these faults need at least two notifications")
    if fault & _IN_NOTIFICATION and notifications < 1:
        raise ValueError("these faults need at least one notification")
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    w = out.write
    leverandor = "Leverandør AS" + ("x" * 100 if "IPL-TEXT-LENGTH" in fault else "")
    extra = ' uttakDato="2018-01-01"' if "IPL-XSD" in fault else ""
    w(
        (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<Melding xmlns="{NS}" versjon="56.0.0" meldingstype="K" '
            f'leverandor={quoteattr(leverandor)} navnEPJ="Syntetisk EPJ" versjonEPJ="1.0" '
            f'versjonUt="1.0" lokalident="sample-{seed}"{extra}>\n'
        ).encode()
    )
    org = synthetic_orgnr(rng)
    # the calendar faults: the message reports for a year whose deadline (or correction
    # deadline) has passed on 1 February of `year`
    report_year = year - (
        2 if "IPL-CALENDAR-AFTER-CORRECTION" in fault else 1 if "IPL-CALENDAR-LATE" in fault else 0
    )
    prev = before_prev = previous_guid
    last = notifications - 1
    first_guid = first_bruker = first_fid = ""
    synthetic_birthdates = "IPL-FID-SYNTHETIC" in fault
    used_fids: set[str] = set()
    buf: list[str] = []
    for i in range(notifications):
        is_last = i == last or "IPL-ALL-DROPPED" in fault
        guid = _guid(rng)
        if is_last and "IPL-GUID-UNIQUE" in fault:
            # the same GUID written another way: the schema's exact-string check passes it
            guid = "{" + first_guid.upper() + "}"
        if is_last and "IPL-GUID-KNOWN" in fault:
            guid = KNOWN_GUID
        status, ref = "N", ""
        if is_last and "IPL-STATUS-CODE" in fault:
            status = "T"
        if is_last and "IPL-REF-MISSING" in fault:
            status = "M"
        if is_last and "IPL-REF-UNKNOWN" in fault:
            status, ref = "M", f' notifikasjonRef="{_guid(rng)}"'
        forrige = _guid(rng) if is_last and "IPL-FORRIGE-CHAIN" in fault else prev
        lopenr = str(start_lopenr + i)
        if is_last and "IPL-LOPENR-FORMAT" in fault:
            lopenr = f"L{lopenr}"
        if is_last and "IPL-LOPENR-ORDER" in fault:
            # the previous notification's number, chained to the one below it
            lopenr, forrige = str(start_lopenr + i - 1), before_prev
        if is_last and "IPL-LOPENR-GAP" in fault:
            lopenr = str(start_lopenr + i + 1)  # one number skipped: no predecessor to check
        day = datetime.date(report_year, 1, 1) + datetime.timedelta(days=i % 28)
        reg = f"{day.isoformat()}T12:00:00"
        hendelse_dato = day.isoformat() + ("+01:00" if "tz-date" in fault else "")
        if is_last and "IPL-HENDELSEDATO-RANGE" in fault:
            hendelse_dato = (day + datetime.timedelta(days=1)).isoformat()
        if is_last and "IPL-HENDELSEDATO-FUTURE" in fault:
            # after the extraction (`fault_context`: 1 February), registered the same day
            day = datetime.date(year, 6, 1)
            reg, hendelse_dato = f"{day.isoformat()}T12:00:00", day.isoformat()
        event = "TjenesteStart"
        tjeneste_type = FIRST_PHASE_TYPES[i % len(FIRST_PHASE_TYPES)]
        if is_last and "IPL-TJENESTETYPE-CODE" in fault:
            tjeneste_type = "13"  # never a code of 9151
        if is_last and "retired-type-in-time" in fault:
            tjeneste_type = "6"
        org_attr = f' tjenesteOrgNr="{org}"' if i % 3 == 0 else ""
        if is_last and "IPL-ORGNR-INVALID" in fault:
            org_attr = f' tjenesteOrgNr="{_bad_orgnr(org)}"'
        if is_last and "IPL-ORGNR-REQUIRED" in fault:
            event, org_attr = "TjenesteutforerEndret", f' tjenesteOrgNr="{_bad_orgnr(org)}"'
        if is_last and "orgnr-zeros" in fault:
            org_attr = ' tjenesteOrgNr="000000000"'
        if is_last and "orgnr-first-digit" in fault:
            org_attr = ' tjenesteOrgNr="123456785"'
        bruker_nr = f"B{seed:04d}{i:08d}"
        type_id = "1"
        fid = synthetic_person_id(rng)
        while fid in used_fids:  # one number per person: brukerNr <-> fid stays stable
            fid = synthetic_person_id(rng)
        used_fids.add(fid)
        if synthetic_birthdates and not is_last:
            type_id, fid = "9", f"{day.day:02d}{day.month:02d}{(1950 + i % 50) % 100:02d}"
        if is_last and "IPL-TYPEID-CODE" in fault:
            type_id = "4"
        if is_last and ("IPL-FID-INVALID" in fault or "brukernr-digits" in fault):
            fid = _bad_check_digit(fid)
        if is_last and "brukernr-digits" in fault:
            bruker_nr = f"{100000000000 + seed * 1000 + i}"
        if is_last and "IPL-TYPEID-KIND" in fault:
            fid = synthetic_person_id(rng, kind=IdKind.DNR)
        if is_last and "dnr-as-typeid-1" in fault:
            fid = synthetic_person_id(rng, kind=IdKind.DNR)
        if is_last and "hnr-individual-750" in fault:
            type_id, fid = "3", _h_nummer(rng)
        if is_last and "IPL-FID-DATE" in fault:
            type_id, fid = "9", "320199"
        if is_last and "IPL-BRUKERNR-FORMAT" in fault:
            bruker_nr = "B" * 101
        if is_last and "IPL-BRUKERNR-STABLE" in fault:
            bruker_nr = first_bruker
        if is_last and "IPL-BRUKERNR-CHANGED" in fault:
            fid = first_fid
        if "IPL-BRUKERNR-ID-KIND" in fault and i == 0:
            # the first person has a D-nummer; the last notification brings their
            # fødselsnummer under the same brukerNr
            type_id, fid = "2", synthetic_person_id(rng, kind=IdKind.DNR)
        if is_last and "IPL-BRUKERNR-ID-KIND" in fault:
            bruker_nr = first_bruker
        fid_attr = "" if is_last and "IPL-FID-MISSING" in fault else f' fid="{fid}"'
        if is_last and ("IPL-XSD-ROW" in fault or "IPL-ALL-DROPPED" in fault):
            bruker_attr = ""  # brukerNr missing: Annotations handling 2, the row is dropped
        else:
            bruker_attr = f" brukerNr={quoteattr(bruker_nr)}"
        tid = "2018-01-01" if is_last and "IPL-XSD-IGNORED" in fault else reg
        bydel = ""
        if i % 4 == 1:
            bydel = ' bydel="030101"'
        if is_last and "IPL-BYDEL-FORMAT" in fault:
            bydel = ' bydel="1"'
        bruker = (
            f'<Bruker pasientGUID="{_guid(rng)}"{bruker_attr}{fid_attr} typeID="{type_id}"{bydel}/>'
        )
        body = (
            f'<{event} tjenesteType="{tjeneste_type}" hendelseRegTid="{reg}"{org_attr} '
            f'hendelseDato="{hendelse_dato}" tjenesteID="T{seed}-{i}" '
            f'hendelseGUID="{_guid(rng)}">{bruker}</{event}>'
        )
        if is_last and "IPL-EVENT-COUNT" in fault:
            body = ""
        if is_last and "IPL-EVENT-PERSON" in fault:
            other = bruker.replace(f"brukerNr={quoteattr(bruker_nr)}", 'brukerNr="B-annen"')
            body += (
                f'<TjenesteSlutt hendelseGUID="{_guid(rng)}" tjenesteType="{tjeneste_type}" '
                f'hendelseRegTid="{reg}" hendelseDato="{hendelse_dato}" '
                f'tjenesteID="T{seed}-{i}">{other}</TjenesteSlutt>'
            )
        if is_last and "two-events" in fault:
            body += (
                f'<TjenesteSlutt hendelseGUID="{_guid(rng)}" tjenesteType="{tjeneste_type}" '
                f'hendelseRegTid="{reg}" hendelseDato="{hendelse_dato}" '
                f'tjenesteID="T{seed}-{i}">{bruker}</TjenesteSlutt>'
            )
        buf.append(
            f'<Notifikasjon statusNotifikasjon="{status}" notifikasjonTid="{tid}" '
            f'notifikasjonGUID="{guid}" notifikasjonForrigeGUID="{forrige}" '
            f'notifikasjonLopeNr="{lopenr}"{ref}>{body}</Notifikasjon>\n'
        )
        if i == 0:
            first_guid, first_bruker, first_fid = guid, bruker_nr, fid
        before_prev, prev = prev, guid
        if len(buf) >= 1000:
            w("".join(buf).encode())
            buf.clear()
    w("".join(buf).encode())
    contacts = [
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
    for ctype, name, email, phone in contacts:
        tel = f" meldTelefon={quoteattr(phone)}" if phone else ""
        w(
            (
                f"<Kontaktperson kontPerson={quoteattr(name)} meldEpost1={quoteattr(email)}"
                f'{tel} typeKontaktperson="{ctype}"/>\n'
            ).encode()
        )
    kommuner = [kommune_nr]
    if "IPL-KOMMUNE-UNIQUE" in fault:
        kommuner.append(kommune_nr)
    if "IPL-KOMMUNE-FORMAT" in fault:
        kommuner.append("301")
    if "IPL-KOMMUNE-NOT-ALLOWED" in fault:
        kommuner.append(FOREIGN_KOMMUNE)
    for k in kommuner:
        w(f"<Kommune kommuneNr={quoteattr(k)}/>\n".encode())
    w(b"</Melding>\n")
    if "IPL-NOT-XML" in fault:
        w(b"<Melding>")


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
        allowed_kommuner=frozenset({kommune_nr}),
        allow_synthetic="IPL-FID-SYNTHETIC" not in faults,
        history=IplosHistory(notifications={KNOWN_GUID: StoredNotification("N", None, "")}),
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
