"""One notification at a time: reading a `Notifikasjon` into a row and the rules that need
only that row (header, events, Bruker, fid)."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from lxml import etree

from app.content.iplos import resend, service_start, timeliness_rows
from app.content.iplos import rules as R
from app.content.iplos.codes import (
    _BYDEL,
    _ID_KIND_OF_TYPE,
    _KIND_NO,
    _LOPENR,
    _ORGNR,
    _TYPE_OF_KIND,
    BRUKER,
    EVENTS,
    RETIRED_TJENESTETYPER,
    RETIRED_TJENESTETYPER_UNTIL,
    STATUSES,
    TJENESTETYPER,
)
from app.content.iplos.digest import _attributes, _digest
from app.content.model import (
    ContentContext,
    RawNotification,
    RawSpool,
    ServiceEvent,
    guid_key,
    parse_xs_date,
)
from app.core.findings import Consequence, Finding, Rule, Subject
from app.identifiers import (
    PersonId,
    check_person_id,
    is_valid_orgnr,
    parse_ddmmyy,
)

# --- the rules ---


@dataclass(slots=True)
class _Event:
    """One event element of a notification (TjenesteStart, TjenesteSlutt, ...)."""

    kind: str
    base: str  # its location, e.g. /Melding/Notifikasjon[3]/TjenesteStart
    tjeneste_type: str
    org_nr: str | None
    tjeneste_id: str
    hendelse_guid: str
    hendelse_dato: str
    reg_tid: str
    when: datetime.date | None  # hendelse_dato read as a date (`parse_xs_date`)

    def stored(self) -> ServiceEvent:
        return ServiceEvent(
            self.kind,
            self.tjeneste_type,
            self.org_nr,
            self.tjeneste_id,
            self.hendelse_guid,
            self.when,
        )


@dataclass(slots=True)
class _Row:
    """Mutable working state of one notification while the rules run."""

    index: int
    guid: str
    status: str
    lopenr: int | None
    forrige: str
    ref: str | None
    events: list[_Event]
    same_person: bool  # every event's Bruker names the first one's person
    event: str  # the first event's name ("" when there is none)
    base: str  # location of the first event, whose Bruker is the notification's person
    hendelse_dato: str  # the first event's
    bruker_nr: str
    fid: str
    type_id: str
    bydel: str | None
    unit: str  # the reporting unit (the stream learns it only after the rows)
    dropped: bool = False
    digest: str = ""  # content_sha256 of the Notifikasjon element
    core_digest: str = ""  # the same without what a resend may renew (`resend.core_digest`)
    already_stored: bool = False  # an identical resend of a stored notification
    fid_ok: bool = True
    findings: list[Finding] = field(default_factory=list)
    raw: RawNotification | None = None  # the attributes as sent

    @property
    def subject(self) -> Subject:
        """Whom the row's findings concern: the values as read (made only for a finding;
        most rows have none)."""
        return Subject(self.guid, self.bruker_nr or None, self.fid or None, self.unit, self.lopenr)

    def add(self, rule: Rule, location: str, detail: str) -> None:
        self.findings.append(Finding(rule, location, detail, self.subject))
        if rule.consequence is Consequence.DROP_NOTIFICATION:
            self.dropped = True


# A code written with leading zeros ("08", "01"): the Annotations' patterns allow them, and a
# leading zero does not make another code (issue 21).
_PADDED_CODE = re.compile(r"0+[0-9]{1,2}")


def _unpadded(value: str) -> str | None:
    """The code `value` reads as when written with leading zeros, else None."""
    return str(int(value)) if _PADDED_CODE.fullmatch(value) else None


def _check_type_id(row: _Row) -> None:
    """typeID "01" is read as 1, with a warning."""
    read = _unpadded(row.type_id)
    if read is not None:
        row.add(
            R.CODE_LEADING_ZERO,
            f"{row.base}/Bruker/@typeID",
            f"typeID {row.type_id} er skrevet med innledende null og er lest som {read}.",
        )
        row.type_id = read


def _as_other_kind(row: _Row, allow_synthetic: bool) -> bool:
    """A fid of another kind than typeID says (a fødselsnummer under typeID 9, a ddmmyy birth
    date under typeID 1, 2 or 3) is kept as the kind the value shows, with a warning, as a
    D-nummer under typeID 1 is (issue 21). False when the value is no such thing either."""
    loc = f"{row.base}/Bruker/@typeID"
    stated, fid = row.type_id, row.fid
    if stated == "9":
        checked = check_person_id(fid)
        if not isinstance(checked, PersonId):
            return False
        row.type_id = _TYPE_OF_KIND[checked.kind]
        row.add(
            R.TYPEID_KIND,
            loc,
            f"fid er et gyldig {_KIND_NO[checked.kind]}, men typeID 9 sier fødselsdato. "
            f"Notifikasjonen er tatt imot med typeID {row.type_id}.",
        )
        if checked.synthetic and not allow_synthetic:
            row.fid_ok = False
            row.add(R.FID_SYNTHETIC, f"{row.base}/Bruker/@fid", "fid er et syntetisk testnummer.")
        return True
    if parse_ddmmyy(fid) is None:
        return False
    row.type_id = "9"
    row.add(
        R.TYPEID_KIND,
        loc,
        f"fid er en fødselsdato (ddmmåå), men typeID {stated} sier "
        f"{_KIND_NO[_ID_KIND_OF_TYPE[stated]]}. Notifikasjonen er tatt imot med typeID 9.",
    )
    return True


def _check_fid(row: _Row, allow_synthetic: bool) -> None:
    loc = f"{row.base}/Bruker/@fid"
    _check_type_id(row)
    type_id, fid = row.type_id, row.fid
    if type_id == "9":
        if parse_ddmmyy(fid) is None and not _as_other_kind(row, allow_synthetic):
            row.fid_ok = False
            row.add(
                R.FID_DATE,
                loc,
                "Personidentifikasjonen (fid) er ikke en gyldig fødselsdato på formen ddmmåå "
                "(typeID 9). Notifikasjonen er lagret.",
            )
        return
    kind = _ID_KIND_OF_TYPE.get(type_id)
    if kind is None:
        row.fid_ok = False
        row.add(
            R.TYPEID_CODE,
            f"{row.base}/Bruker/@typeID",
            "typeID er ikke en gyldig kode; gyldige verdier er 1, 2, 3 og 9.",
        )
        return
    # the 2032 rule reads the century from the earliest event: nobody is born after it
    checked = check_person_id(fid, on=min((e.when for e in row.events if e.when), default=None))
    if not isinstance(checked, PersonId) and _as_other_kind(row, allow_synthetic):
        return
    if not isinstance(checked, PersonId):
        row.fid_ok = False
        why = {
            "length": "har ikke 11 tegn",
            "not_digits": "inneholder annet enn siffer",
            "date": "har ugyldig dato",
            "checksum": "har feil kontrollsiffer",
        }[checked.value]
        row.add(
            R.FID_INVALID,
            loc,
            f"Personidentifikasjonen (fid) {why} (typeID {type_id}). Notifikasjonen er lagret.",
        )
        return
    if checked.kind is not kind:
        # The number says what it is: keep the row, stored with the kind the number shows.
        row.type_id = _TYPE_OF_KIND[checked.kind]
        row.add(
            R.TYPEID_KIND,
            f"{row.base}/Bruker/@typeID",
            f"fid er et {_KIND_NO[checked.kind]}, men typeID {type_id} sier {_KIND_NO[kind]}. "
            f"Notifikasjonen er tatt imot med typeID {row.type_id}.",
        )
    if checked.synthetic and not allow_synthetic:
        row.fid_ok = False
        row.add(R.FID_SYNTHETIC, loc, "fid er et syntetisk testnummer (måned + 80).")


def tjenestetype_valid(code: str, on: datetime.date | None) -> bool:
    """A 9151 code judged at the date `on`: a retired code is still valid for a service begun
    before it was retired (the Annotations' validationDate is the service's start; events
    other than TjenesteStart are judged at it by `_check_service_starts`)."""
    if code in TJENESTETYPER:
        return True
    return code in RETIRED_TJENESTETYPER and on is not None and on <= RETIRED_TJENESTETYPER_UNTIL


def _read_event(attrs: dict[str, str], loc: str, kind: str) -> _Event:
    get = attrs.get
    hendelse_dato = get("hendelseDato") or ""
    return _Event(
        kind,
        f"{loc}/{kind}",
        get("tjenesteType") or "",
        get("tjenesteOrgNr"),
        get("tjenesteID") or "",
        guid_key(get("hendelseGUID") or ""),
        hendelse_dato,
        get("hendelseRegTid") or "",
        parse_xs_date(hendelse_dato),
    )


_NO_ATTRIBUTES: dict[str, str] = {}  # read only


def _person_of(bruker: dict[str, str] | None) -> tuple[str | None, ...]:
    if bruker is None:
        return (None, None, None)
    return (bruker.get("brukerNr"), bruker.get("fid"), bruker.get("typeID"))


def _read_row(index: int, n_el: etree._Element, unit: str, spool: RawSpool | None = None) -> _Row:
    """A notification's values as written, and its content digest; no rule runs here. Runs
    once per notification: one pass over its elements, in document order (the digest's),
    each element's attributes read once for both."""
    loc = f"/Melding/Notifikasjon[{index}]"
    parts: list[str] = []
    attrs = _attributes(n_el, n_el.tag, parts)
    get = attrs.get
    events: list[_Event] = []
    brukere: list[dict[str, str] | None] = []  # per event: its first Bruker's attributes
    raw_events: list[tuple[str, dict[str, str], dict[str, str]]] = []
    for child in n_el.iterchildren(etree.Element):
        tag = child.tag
        event_attrs = _attributes(child, tag, parts)
        bruker: dict[str, str] | None = None
        for grandchild in child.iterchildren(etree.Element):
            inner = grandchild.tag
            inner_attrs = _attributes(grandchild, inner, parts)
            if bruker is None and inner == BRUKER:
                bruker = inner_attrs
            if len(grandchild):  # rarely: a Bruker has no children
                for deeper in grandchild.iterdescendants(etree.Element):
                    _attributes(deeper, deeper.tag, parts)
        kind = EVENTS.get(tag)
        if kind is not None:
            events.append(_read_event(event_attrs, loc, kind))
            brukere.append(bruker)
            raw_events.append((kind, event_attrs, bruker or _NO_ATTRIBUTES))
    first_bruker = (brukere[0] if brukere else None) or _NO_ATTRIBUTES
    bget = first_bruker.get
    bruker_nr = bget("brukerNr") or ""
    fid = bget("fid") or ""
    ref = get("notifikasjonRef")
    lopenr_raw = get("notifikasjonLopeNr") or ""
    first = events[0] if events else None
    return _Row(
        index=index,
        guid=guid_key(get("notifikasjonGUID") or ""),
        status=get("statusNotifikasjon") or "",
        lopenr=int(lopenr_raw) if _LOPENR.fullmatch(lopenr_raw) else None,
        forrige=guid_key(get("notifikasjonForrigeGUID") or ""),
        ref=guid_key(ref) if ref else None,
        events=events,
        # one event names one person: no need to compare
        same_person=len(brukere) <= 1 or len({_person_of(b) for b in brukere}) == 1,
        event=first.kind if first else "",
        base=first.base if first else loc,
        hendelse_dato=first.hendelse_dato if first else "",
        bruker_nr=bruker_nr,
        fid=fid,
        type_id=bget("typeID") or "",
        bydel=bget("bydel"),
        unit=unit,
        digest=_digest(parts),
        core_digest=resend.core_digest(parts),
        raw=RawNotification.of(attrs, raw_events, spool),
    )


def _check_header(row: _Row) -> None:
    """statusNotifikasjon, notifikasjonRef and the form of the løpenummer."""
    loc = f"/Melding/Notifikasjon[{row.index}]"
    if row.status not in STATUSES:
        detail = (
            "statusNotifikasjon T (korriger/suppler) skal foreløpig ikke brukes."
            if row.status == "T"
            else "statusNotifikasjon er ikke en kode i kodeverk 7316 (N, M eller C)."
        )
        row.add(R.STATUS_CODE, f"{loc}/@statusNotifikasjon", detail)
    elif row.status != "N" and row.ref is None:
        row.add(
            R.REF_MISSING,
            f"{loc}/@notifikasjonRef",
            f"Notifikasjon med status {row.status} mangler notifikasjonRef.",
        )
    if row.lopenr is None:
        row.add(
            R.LOPENR_FORMAT,
            f"{loc}/@notifikasjonLopeNr",
            "notifikasjonLopeNr er ikke et heltall på 1 til 18 siffer (0-9).",
        )


def _check_event(row: _Row, ev: _Event, extracted_on: datetime.date | None) -> None:
    """One event's service type, organisation number and dates."""
    read = _unpadded(ev.tjeneste_type)
    if read is not None:
        row.add(
            R.CODE_LEADING_ZERO,
            f"{ev.base}/@tjenesteType",
            f"tjenesteType {ev.tjeneste_type} er skrevet med innledende null og er lest som "
            f"{read}.",
        )
        ev.tjeneste_type = read
    tt = ev.tjeneste_type
    when = ev.when
    if not tjenestetype_valid(tt, when) and not service_start.needs_start(ev.kind, tt):
        detail = (
            f"tjenesteType {tt} er utgått og kan ikke brukes for tjenester som starter etter "
            f"{RETIRED_TJENESTETYPER_UNTIL.strftime('%d.%m.%Y')}."
            if tt in RETIRED_TJENESTETYPER
            else "tjenesteType er ikke en kode i kodeverk 9151."
        )
        row.add(R.TJENESTETYPE_CODE, f"{ev.base}/@tjenesteType", detail)
    org = ev.org_nr
    if org is not None:
        m = _ORGNR.fullmatch(org)
        if m is None or not is_valid_orgnr(m.group(1)):
            if ev.kind == "TjenesteutforerEndret":
                row.add(
                    R.ORGNR_REQUIRED,
                    f"{ev.base}/@tjenesteOrgNr",
                    "tjenesteOrgNr er ikke et gyldig organisasjonsnummer. Notifikasjonen er "
                    "lagret med verdien slik den ble sendt.",
                )
            else:
                row.add(
                    R.ORGNR_INVALID,
                    f"{ev.base}/@tjenesteOrgNr",
                    "tjenesteOrgNr er ikke et gyldig organisasjonsnummer; verdien er ignorert.",
                )
                ev.org_nr = None
    # a date that is no date is IPL-XSD-VALUE already (kept with the error): not compared
    if when is not None and timeliness_rows.after_registration(
        ev.when, ev.hendelse_dato, ev.reg_tid
    ):
        row.add(
            R.HENDELSEDATO_RANGE,
            f"{ev.base}/@hendelseDato",
            "hendelseDato er senere enn datoen i hendelseRegTid.",
        )
    if when is not None and extracted_on is not None and when > extracted_on:
        row.add(
            R.HENDELSEDATO_FUTURE,
            f"{ev.base}/@hendelseDato",
            f"hendelseDato er senere enn datoen meldingen ble laget "
            f"(MsgInfo/GenDate {extracted_on.strftime('%d.%m.%Y')}).",
        )


def _check_bruker(row: _Row, allow_synthetic: bool) -> None:
    """brukerNr, the person identifier and bydel of the first event's Bruker."""
    bruker_nr = row.bruker_nr
    if not bruker_nr or len(bruker_nr) > 100:
        row.add(
            R.BRUKERNR_FORMAT,
            f"{row.base}/Bruker/@brukerNr",
            f"brukerNr har {len(bruker_nr)} tegn; det skal ha 1 til 100.",
        )
    if row.fid:
        _check_fid(row, allow_synthetic)
    else:
        row.fid_ok = False
    if row.bydel is not None and _BYDEL.fullmatch(row.bydel) is None:
        row.add(
            R.BYDEL_FORMAT,
            f"{row.base}/Bruker/@bydel",
            "bydel er ikke 2 til 6 siffer; verdien er ignorert.",
        )
        row.bydel = None


def _check_row(row: _Row, ctx: ContentContext, extracted_on: datetime.date | None) -> None:
    """The rules of one notification on its own (the sequence comes later)."""
    if not row.events:
        # the schema allows a notification without events: kept (an annulment names its
        # original by notifikasjonRef), the header still checked
        row.add(
            R.EVENT_COUNT,
            f"/Melding/Notifikasjon[{row.index}]",
            "Notifikasjonen har ingen hendelse; den er lagret"
            + (
                " og annullerer originalen den peker på."
                if row.status == "C"
                else ", men har ingen tjeneste å registrere."
            ),
        )
        _check_header(row)
        return
    if not row.same_person:
        row.add(
            R.EVENT_PERSON,
            f"/Melding/Notifikasjon[{row.index}]",
            f"Notifikasjonen har {len(row.events)} hendelser med ulik Bruker.",
        )
    _check_header(row)
    for ev in row.events:
        _check_event(row, ev, extracted_on)
    _check_bruker(row, ctx.allow_synthetic)
