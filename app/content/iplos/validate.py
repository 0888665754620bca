"""Validate an XPR(ipl) 56.0.0 `Melding`: first the project's XSD, then every rule of
DOMAIN.md §2.4 and XPR(ipl)_Annotations.xsd, each with its consequence.

Performance (a message may hold 100 000 notifications, ~50 MB): one parse, one XSD pass in
libxml2, then a single walk over the children with plain attribute look-ups (no XPath per
notification). XPath is used only to locate the few XSD errors reported.

Decisions:
- A schema error is handled where it sits, following the Annotations (see `_xsd_rule`):
  on a notification's value with handling 9 (a malformed GUID, a date that is no date) the row
  is kept with the error (IPL-XSD-VALUE, issue 21); on its brukerNr (handling 2) or structure
  it drops that notification (IPL-XSD-ROW) and the rules run on the others; on a value KPR
  does not use it is a warning (IPL-XSD-IGNORED); on versjon, a missing notifikasjonGUID, fid
  or typeID (handling 1) or outside the notifications it rejects the message (T02), and then
  no rule runs, since they assume the structure the schema guarantees. XSD errors that are a
  rule of their own (a missing fid, a duplicate notifikasjonGUID or kommuneNr) are reported
  under that rule. Texts name the element path
  (`/Melding/Notifikasjon[3]/...`), never a line: a 50 MB message may be one line.
- A notification keeps every event it holds (the schema's sequence of optional elements);
  the person is the first event's Bruker.
- A message none of whose notifications is taken is rejected (IPL-ALL-DROPPED): status 2.
- Notifications carry no municipality: a message is attributed to its first `Kommune` (the
  reporting unit), for løpenummer, the forrige-GUID chain and brukerNr.
- Løpenummer and the chain are checked in løpenummer order, since the standard only asks
  (does not require) that a message lists its notifications sorted.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast
from zoneinfo import ZoneInfo

from lxml import etree

from app.content.calendar import local_date
from app.content.iplos import resend, service_start, timeliness_rows
from app.content.iplos import rules as R
from app.content.iplos.kommune_year import kommune_year_findings
from app.content.model import (
    Contact,
    ContentContext,
    ContentResult,
    FidChange,
    HistoryKeys,
    IplosHistory,
    Notification,
    RawNotification,
    ServiceEvent,
    add_to_ranges,
    fid_change,
    gaps,
    guid_key,
    normalize_guid,
    pair_moves,
    parse_xs_date,
)
from app.core.findings import Consequence, Finding, Rule, Subject
from app.core.schemas import SCHEMAS_DIR, load_schema
from app.core.xmlparse import XmlRejected, parse_xml
from app.identifiers import (
    IdKind,
    PersonId,
    check_person_id,
    is_valid_orgnr,
    mask_person_ids,
    parse_ddmmyy,
)

NS = "http://www.npr.no/xmlstds/56_0_0_ipl"
_SCHEMA = "iplos-56.0.0/XPR-ipl-56.0.0.xsd"
SCHEMA_PATH = SCHEMAS_DIR / _SCHEMA

_Q = "{" + NS + "}"
MELDING = _Q + "Melding"
NOTIFIKASJON = _Q + "Notifikasjon"
KONTAKTPERSON = _Q + "Kontaktperson"
KOMMUNE = _Q + "Kommune"
BRUKER = _Q + "Bruker"
EVENTS = {
    _Q + name: name
    for name in (
        "TjenesteStart",
        "MidlertidigStoppTil",
        "MidlertidigStoppFra",
        "TjenesteutforerEndret",
        "TjenesteSlutt",
    )
}

STATUSES = frozenset({"N", "M", "C"})  # kodeverk 7316 without T (not in use yet)
# kodeverk 9151 in use; 6, 14, 23, 24, 26, 27, 28 are retired
TJENESTETYPER = frozenset(
    {"1", "2", "3", "4", "5", "7", "8", "9", "11", "15", "17", "18", "19", "20", "21"}
    | {"22", "25", "29"}
)
RETIRED_TJENESTETYPER = frozenset(["6", "14", "23", "24", "26", "27", "28"])
# The last service start for which a retired code is still valid. The reference gives no date
# per code: XPR(ipl)_CodingSchemes.xsd 56.0.0.5 (generated 2021-04-28) marks them "Utgått"
# without one, and the Annotations' validationDate for tjenesteType is the service's start
# (tjenesteStartDato, see app/content/iplos/service_start.py). Decision: services begun up to
# the end of reporting year 2020 may use them (the 2018-2020 extractions used them); KPR
# confirms or refines this per code.
RETIRED_TJENESTETYPER_UNTIL = datetime.date(2020, 12, 31)
KONTAKTTYPER = frozenset(str(i) for i in range(1, 20))  # kodeverk 8471
MANDATORY_KONTAKTTYPER = ("1", "15", "16", "17")
_ID_KIND_OF_TYPE = {"1": IdKind.FNR, "2": IdKind.DNR, "3": IdKind.HNR}
_TYPE_OF_KIND = {kind: type_id for type_id, kind in _ID_KIND_OF_TYPE.items()}
_KIND_NO = {IdKind.FNR: "fødselsnummer", IdKind.DNR: "D-nummer", IdKind.HNR: "H-nummer"}

# ASCII digits only ([0-9], never \d: that also matches Arabic-Indic and other digits).
# A løpenummer has at most 18 digits, so it fits the database's BIGINT.
_LOPENR = re.compile(r"[0-9]{1,18}")
_KOMMUNENR = re.compile(r"[0-9]{4}")
_BYDEL = re.compile(r"[0-9]{2,6}")
_ORGNR = re.compile(r"([0-9]{9})0?")
_PHONE = re.compile(r"(\+47|0047|)( *[0-9] *){8}")
_YEAR = re.compile(r"[0-9]{4}")
_CODE = re.compile(r"[0-9]{1,3}")
# RFC 5322 dot-atom local part and a host name (the annotation's expression without the rarely
# used quoted local parts and address literals).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+{_LABEL}")
_MAX_XSD_FINDINGS = 50
_TEXT_ATTRS = ("leverandor", "navnEPJ", "versjonEPJ", "versjonUt")

_OSLO = ZoneInfo("Europe/Oslo")


def is_email(value: str) -> bool:
    return _EMAIL.fullmatch(value) is not None


def is_phone(value: str) -> bool:
    return _PHONE.fullmatch(value) is not None


# --- XSD ---
#
# libxml2's schema messages quote the offending value ("The value '018544 03784' is not
# accepted by the pattern ..."), and any attribute may hold a fødselsnummer by mistake. The
# messages are therefore never passed on: each is parsed into element, attribute and kind of
# problem, and the detail is rebuilt from those alone. Names are XML names (no apostrophes);
# an unknown name is kept only when it cannot carry a number (no run of three digits).

_XSD_HEAD = re.compile(r"Element '([^']*)'(?:, attribute '([^']*)')?: ")
_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,39}")
_DIGIT_RUN = re.compile(r"[0-9]{3}")
_FACET = re.compile(r"\[facet '([A-Za-z]{1,20})'\] ")
_LENGTH_LIMIT = re.compile(r"(?:maximum |minimum |)length of '([0-9]{1,4})'\.$")
_ATOMIC_TYPE = re.compile(r"is not a valid value of the atomic type '(xs:[A-Za-z]{1,20})'\.$")
_FIXED = re.compile(r"does not match the fixed value constraint '([A-Za-z0-9.]{1,10})'\.$")
_EXPECTED = re.compile(r"Expected is (?:one of )?\( ([^()]*) \)\.$")
_CONSTRAINT = re.compile(r"identity-constraint '([A-Za-z_][A-Za-z0-9_]{0,39})'\.$")
_ATTR_PROBLEM = re.compile(r"The attribute '([^']*)' is (required but missing|not allowed)\.$")
_FACET_NO = {
    "pattern": "verdien har ikke riktig format",
    "length": "verdien har feil lengde",
    "minLength": "verdien er for kort",
    "maxLength": "verdien er for lang",
    "enumeration": "verdien er ikke en av de tillatte verdiene",
}
_LIMIT_NO = {"length": "skal ha {} tegn", "minLength": "minst {} tegn", "maxLength": "maks {} tegn"}
_TYPE_NO = {
    "xs:date": "en gyldig dato (xs:date, ÅÅÅÅ-MM-DD)",
    "xs:dateTime": "et gyldig tidspunkt (xs:dateTime, ÅÅÅÅ-MM-DDTtt:mm:ss)",
    "xs:integer": "et gyldig heltall (xs:integer)",
}


def safe_name(name: str) -> str:
    """An element or attribute name fit to quote: without namespace, and "(ukjent navn)" when
    it is not a plain name or holds a run of digits (a name could be made of a number)."""
    local = name.rsplit("}", 1)[-1]
    if _SAFE_NAME.fullmatch(local) and not _DIGIT_RUN.search(local):
        return local
    return "(ukjent navn)"


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """One libxml2 schema error reduced to what may be shown: names and a Norwegian text."""

    element: str | None
    attribute: str | None
    text: str  # the kind of problem, without any value from the document
    constraint: str | None = None  # the identity constraint for a duplicate (schema name)
    missing_attribute: str | None = None
    follow_up: bool = False  # libxml2's "Warning: No precomputed value" after an error
    not_allowed: bool = False  # an attribute the schema does not allow here


def describe_schema_error(message: str) -> SchemaProblem:
    """Parse a libxml2 schema message (namespace of the IPLOS schema removed) into a
    `SchemaProblem`. Values are never copied: only schema constants (type names, length limits,
    fixed values, expected element names) and sanitised names."""
    head = _XSD_HEAD.match(message)
    element = safe_name(head.group(1)) if head else None
    attribute = safe_name(head.group(2)) if head and head.group(2) else None
    body = message[head.end() :] if head else message
    constraint = missing = None
    not_allowed = False
    if body.startswith("Warning: "):
        return SchemaProblem(element, attribute, "", follow_up=True)
    if facet := _FACET.match(body):
        name = facet.group(1)
        text = _FACET_NO.get(name, f"verdien bryter skjemaregelen {name}")
        limit = _LENGTH_LIMIT.search(body)
        if limit and name in _LIMIT_NO:
            text += " (" + _LIMIT_NO[name].format(limit.group(1)) + ")"
    elif m := _ATTR_PROBLEM.match(body):
        name = safe_name(m.group(1))
        if m.group(2) == "not allowed":
            attribute = name
            not_allowed = True
            text = "attributtet er ikke tillatt her"
        else:
            missing = name
            text = f"attributtet {name} mangler"
    elif m := _ATOMIC_TYPE.search(body):
        text = "verdien er ikke " + _TYPE_NO.get(m.group(1), f"av typen {m.group(1)}")
    elif "is not a valid value of the" in body:
        text = "verdien har ikke gyldig type"
    elif m := _FIXED.search(body):
        text = f"verdien skal være {m.group(1)}"
    elif body.startswith(("This element is not expected.", "Missing child element(s).")):
        text = (
            "elementet er ikke tillatt her"
            if body.startswith("This")
            else "elementet mangler et underelement"
        )
        if m := _EXPECTED.search(body):
            names = ", ".join(safe_name(n.strip()) for n in m.group(1).split(","))
            text += f" (forventet: {names})"
    elif body.startswith("Character content"):
        text = "elementet kan ikke inneholde tekst"
    elif m := _CONSTRAINT.search(body):
        constraint = m.group(1)
        text = "samme verdi er brukt flere ganger"
    elif body.startswith("No matching global declaration available for the validation root"):
        text = f"rotelementet skal være Melding i navnerommet {NS}"
    else:
        text = "verdien eller strukturen er ikke tillatt etter skjemaet"
    return SchemaProblem(element, attribute, text, constraint, missing, not_allowed=not_allowed)


# How a schema error inside the message is handled, by the attribute it concerns, following
# XPR(ipl)_Annotations.xsd (handlingObligatID/handlingTypeID: 1 reject the message, 2 drop the
# row, 7 set to NULL, 9 no action):
# - handling 1: versjon, a missing notifikasjonGUID, fid, typeID -> reject the message
#   (kommuneNr and meldingstype too: without them nothing can be attributed or read);
# - values KPR never stores or uses, with handling 7 or 9 (texts, contact details, times of
#   registration, pasientGUID, the prohibited Bruker attributes, the Melding's moduleConstraint
#   I attributes) -> a warning, value ignored;
# - bydel has a rule of its own (IPL-BYDEL-FORMAT, a warning): no second finding;
# - a notification's values with handling 9 (`_XSD_KEPT_ATTRS`, a malformed notifikasjonGUID)
#   -> the row is kept and stored with the error (IPL-XSD-VALUE, issue 21);
# - anything else inside a notification (brukerNr: handling 2; the structure) -> drop the row;
# - anything else outside the notifications (structure, Kontaktperson/Kommune elements) ->
#   reject the message, as the rules assume the structure the schema guarantees.
_XSD_REJECT_ATTRS = frozenset(
    {
        "versjon",
        "meldingstype",
        "notifikasjonGUID",
        "fid",
        "typeID",
        "kommuneNr",
    }
)
_XSD_IGNORED_ATTRS = frozenset(
    {
        "leverandor",
        "navnEPJ",
        "versjonEPJ",
        "versjonUt",
        "lokalident",
        "lopenr",
        "kontPerson",
        "meldTelefon",
        "meldEpost1",
        "meldEpost2",
        "typeKontaktperson",
        "kommuneOrgNr",
        # moduleConstraint I on Melding: not used by the ipl module, ignored like the others
        # (their handling 1 is for the modules that use them; older extractions write
        # uttakDato), issue 21
        "fraDatoPeriode",
        "uttakDato",
        "tilDatoPeriode",
        "notifikasjonTid",
        "hendelseRegTid",
        "midlertidigStoppID",
        "pasientGUID",
        "kjonn",
        "fodselsar",
        "komNrHjem",
    }
)
_XSD_OWN_RULE_ATTRS = frozenset({"bydel"})
# A notification's values whose schema error leaves the row kept with the error
# (IPL-XSD-VALUE): the Annotations give them "Ingen handling" (9) for obligatorisk and type.
# notifikasjonGUID only when present (missing: handling 1); brukerNr (2) drops the row, and
# fid and typeID (1) reject the message.
_XSD_KEPT_ATTRS = frozenset(
    {
        "statusNotifikasjon",
        "notifikasjonForrigeGUID",
        "notifikasjonLopeNr",
        "notifikasjonRef",
        "tjenesteType",
        "hendelseDato",
        "tjenesteID",
        "hendelseGUID",
        "tjenesteOrgNr",
    }
)
_PATH_STEP = re.compile(r"\*(?:\[([0-9]{1,9})\])?")
_INDEXED = ("Notifikasjon", "Kontaktperson", "Kommune")


@dataclass(frozen=True, slots=True)
class _Tree:
    """The root's element children, read once: libxml2 names nodes by position (`/*/*[3]/*`),
    and a message may hold 100 000 notifications."""

    root: etree._Element
    top: list[etree._Element]
    index: list[int]  # per top position: 1-based index among siblings of the same name

    @classmethod
    def of(cls, root: etree._Element) -> _Tree:
        top = [c for c in root if isinstance(c.tag, str)]
        counts: Counter[str] = Counter()
        index: list[int] = []
        for child in top:
            counts[child.tag] += 1
            index.append(counts[child.tag])
        return cls(root, top, index)

    def node_at(self, path: str | None) -> tuple[etree._Element, int | None] | None:
        """The element at libxml2's path, with its top-level ancestor's position."""
        if not path or not path.startswith("/*"):
            return None
        steps = path.split("/")[2:]
        node: etree._Element = self.root
        top_pos: int | None = None
        for depth, step in enumerate(steps):
            m = _PATH_STEP.fullmatch(step)
            if m is None:
                return None
            pos = int(m.group(1) or 1) - 1
            kids = self.top if depth == 0 else [c for c in node if isinstance(c.tag, str)]
            if not 0 <= pos < len(kids):
                return None
            node = kids[pos]
            if depth == 0:
                top_pos = pos
        return node, top_pos

    def location(self, node: etree._Element, top_pos: int | None) -> str:
        """`/Melding/Notifikasjon[3]/TjenesteStart/Bruker` for a node found by `node_at`."""
        parts: list[str] = []
        current: etree._Element | None = node
        while current is not None and current is not self.root:
            parent = current.getparent()
            name = safe_name(etree.QName(current).localname)
            if parent is self.root and top_pos is not None and name in _INDEXED:
                name = f"{name}[{self.index[top_pos]}]"
            parts.append(name)
            current = parent
        parts.append(safe_name(etree.QName(self.root).localname))
        return "/" + "/".join(reversed(parts))


@dataclass(frozen=True, slots=True)
class _XsdReport:
    """The schema's verdict: findings that reject the message, and per notification (1-based
    index) the findings that drop it or only warn."""

    message: tuple[Finding, ...] = ()
    rows: dict[int, tuple[Finding, ...]] = field(default_factory=dict)

    @property
    def rejected(self) -> bool:
        return any(f.rule.consequence is Consequence.REJECT_MESSAGE for f in self.message)


def _xsd_rule(problem: SchemaProblem, in_notification: bool) -> Rule | None:
    """The rule an XSD problem falls under (None: another rule reports it)."""
    if problem.constraint == "NotifikasjonP_ID":
        # the rules compare GUIDs normalised and drop the later row (`_check_guids`)
        return None
    if problem.constraint == "KommuneP_ID":
        return R.KOMMUNE_UNIQUE
    if problem.missing_attribute == "fid":
        return R.FID_MISSING
    attribute = problem.attribute or problem.missing_attribute
    if attribute in _XSD_OWN_RULE_ATTRS:
        return None
    if in_notification and not problem.not_allowed:
        if attribute == "notifikasjonGUID" and problem.missing_attribute is None:
            return R.XSD_VALUE  # malformed, not missing: handling 9 (issue 21)
        if attribute in _XSD_KEPT_ATTRS:
            return R.XSD_VALUE
    if attribute in _XSD_REJECT_ATTRS:
        return R.XSD
    if attribute in _XSD_IGNORED_ATTRS or problem.not_allowed:
        return R.XSD_IGNORED
    return R.XSD_ROW if in_notification else R.XSD


def _xsd_report(root: etree._Element) -> _XsdReport:
    schema = load_schema(_SCHEMA)
    if schema.validate(root):
        return _XsdReport()
    tree = _Tree.of(root)
    message: list[Finding] = []
    rows: dict[int, list[Finding]] = {}
    # lxml-stubs do not declare _ErrorLog iterable; it is.
    entries = cast("Iterable[etree._LogEntry]", schema.error_log)
    logged = False
    for entry in entries:
        problem = describe_schema_error(entry.message.replace(_Q, ""))
        if problem.follow_up:
            continue
        logged = True
        found = tree.node_at(entry.path)
        node, top_pos = found if found is not None else (root, None)
        notification = (
            tree.index[top_pos]
            if top_pos is not None and tree.top[top_pos].tag == NOTIFIKASJON
            else None
        )
        rule = _xsd_rule(problem, notification is not None)
        if rule is None:
            continue
        where = tree.location(node, top_pos)
        attribute = problem.attribute or problem.missing_attribute
        location = f"{where}/@{attribute}" if attribute else where
        detail = f"Skjemafeil i {location}: {problem.text}."
        if rule.consequence is Consequence.REJECT_MESSAGE:
            detail = f"{rule.text_no} {detail}"  # the message-level texts say what to do
        finding = Finding(rule, location, detail)
        if notification is not None and rule.consequence is not Consequence.REJECT_MESSAGE:
            rows.setdefault(notification, []).append(finding)
        elif rule.consequence is Consequence.REJECT_MESSAGE:
            if len(message) < _MAX_XSD_FINDINGS:
                message.append(finding)
        else:
            message.append(finding)  # a warning outside the notifications
    if not logged:  # defensive: libxml2 refused the document but logged nothing
        message.append(Finding(R.XSD, "/Melding", f"{R.XSD.text_no}"))
    return _XsdReport(tuple(message), {k: tuple(v) for k, v in rows.items()})


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


def _read_row(index: int, n_el: etree._Element, unit: str) -> _Row:
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
        raw=RawNotification.of(attrs, raw_events),
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


def _local_date(moment: datetime.datetime | None) -> datetime.date | None:
    """The date in Norway of an instant (a naive one is already Norwegian time)."""
    if moment is None:
        return None
    return (moment.astimezone(_OSLO) if moment.tzinfo is not None else moment).date()


def _check_sequence(rows: list[_Row], unit: str, ctx: ContentContext) -> list[Finding]:
    """What ties a notification to others: its GUID, løpenummer, forrige-GUID chain,
    references and brukerNr. Only a GUID used twice for different content drops a row; the
    rest are warnings (the Annotations' handling for order and chain is 9, no action), so
    messages may arrive in any order and a dropped row can be sent again. Returns the
    message-level findings (the gap report)."""
    _check_guids(rows, ctx.history)
    live = [r for r in rows if not r.already_stored]
    _check_service_starts(live, unit, ctx.history)
    _check_lopenr(live, unit, ctx.history)
    _check_chain(live, unit, ctx.history)
    _check_refs(live, ctx.history)
    _check_hendelser(live, ctx.history)
    _check_brukere(live, unit, ctx.history)
    return _gap_findings(rows, unit, ctx.history)


def _check_guids(rows: list[_Row], history: IplosHistory) -> None:
    """A GUID names one notification: a second row with it in the message is dropped (GUIDs
    compared normalised, so `{ABC-...}` and `abc-...` are one); a row whose GUID was stored
    before is no error when its content is identical (a resend) and dropped when it differs."""
    first: set[str] = set()
    for row in rows:
        loc = f"/Melding/Notifikasjon[{row.index}]/@notifikasjonGUID"
        if row.guid in first:
            row.add(
                R.GUID_UNIQUE,
                loc,
                "notifikasjonGUID er brukt på en tidligere notifikasjon i samme melding "
                "(store og små bokstaver og klammer regnes som like); denne er ikke tatt imot.",
            )
            continue
        first.add(row.guid)
        stored = history.notifications.get(row.guid)
        if stored is None or row.dropped:
            continue
        if resend.same_notification(stored, row.digest, row.core_digest):
            row.already_stored = True
        else:
            row.add(
                R.GUID_KNOWN,
                loc,
                "En notifikasjon med denne notifikasjonGUID er tatt imot tidligere med annet "
                "innhold.",
            )


def _check_service_starts(rows: list[_Row], unit: str, history: IplosHistory) -> None:
    """The retired codes `_check_event` left to the service's start (see
    app/content/iplos/service_start.py): valid when the service began before the code's end,
    an error when after it, accepted with a warning when KPR does not know the start."""
    in_message: dict[tuple[str, str], datetime.date] | None = None
    until = RETIRED_TJENESTETYPER_UNTIL
    for row in rows:
        if row.dropped:
            continue
        for ev in row.events:
            tt = service_start.code_of(ev.tjeneste_type)
            if not service_start.needs_start(ev.kind, tt) or tjenestetype_valid(tt, ev.when):
                continue
            if in_message is None:
                in_message = service_start.starts_in(rows)
            start = service_start.start_of(
                unit, row.bruker_nr, ev.tjeneste_id, in_message, history.service_starts
            )
            loc = f"{ev.base}/@tjenesteType"
            if start is None:
                row.add(
                    R.TJENESTETYPE_START_UNKNOWN,
                    loc,
                    f"tjenesteType {tt} er utgått for tjenester som starter etter "
                    f"{until:%d.%m.%Y}, og KPR kjenner ikke starten på tjenesten "
                    "(TjenesteStart for samme brukerNr og tjenesteID). Hendelsen er tatt imot.",
                )
            elif not tjenestetype_valid(tt, start):
                row.add(
                    R.TJENESTETYPE_CODE,
                    loc,
                    f"tjenesteType {tt} er utgått og kan ikke brukes for tjenester som starter "
                    f"etter {until:%d.%m.%Y}; tjenesten startet {start:%d.%m.%Y}.",
                )


def _check_hendelser(rows: list[_Row], history: IplosHistory) -> None:
    """An event names itself by hendelseGUID: the same GUID in another notification (before,
    or earlier in this message) is the same event sent again. A warning: the row is kept and
    the register's episodes count the event once. An identical resend of a stored
    notification repeats its events under the same notification: no warning."""
    seen: dict[str, str] = {}
    for row in rows:
        if row.already_stored:
            continue
        for ev in row.events:
            g = ev.hendelse_guid
            if not g:
                continue
            before = seen.get(g) or history.hendelser.get(g)
            if before is not None and before != row.guid:
                row.add(
                    R.HENDELSE_GUID_KNOWN,
                    f"{ev.base}/@hendelseGUID",
                    f"hendelseGUID {g} er sendt før i notifikasjon {before}.",
                )
            seen.setdefault(g, row.guid)


def _check_lopenr(rows: list[_Row], unit: str, history: IplosHistory) -> None:
    """A løpenummer belongs to one notification: warn when another GUID used it before."""
    seen: dict[int, str] = {}
    for row in rows:
        if row.lopenr is None or row.dropped:
            continue
        loc = f"/Melding/Notifikasjon[{row.index}]/@notifikasjonLopeNr"
        earlier = seen.get(row.lopenr)
        stored = history.guid_by_lopenr.get((unit, row.lopenr))
        if earlier is not None and earlier != row.guid:
            row.add(
                R.LOPENR_ORDER,
                loc,
                f"notifikasjonLopeNr {_nr(row.lopenr)} er brukt på flere notifikasjoner i "
                "meldingen.",
            )
        elif stored is not None and stored != row.guid:
            row.add(
                R.LOPENR_ORDER,
                loc,
                f"notifikasjonLopeNr {_nr(row.lopenr)} er brukt før av en annen notifikasjon fra "
                "kommunen.",
            )
        seen.setdefault(row.lopenr, row.guid)


def _check_chain(rows: list[_Row], unit: str, history: IplosHistory) -> None:
    """notifikasjonForrigeGUID names the notification with the løpenummer just below, when
    KPR has that one (in this message or before); an unknown predecessor is a gap, reported
    once for the message by `_gap_findings`."""
    in_message = {r.lopenr: r.guid for r in rows if r.lopenr is not None and not r.dropped}
    for row in rows:
        if row.lopenr is None or row.dropped:
            continue
        before = in_message.get(row.lopenr - 1) or history.guid_by_lopenr.get(
            (unit, row.lopenr - 1)
        )
        if before is not None and row.forrige != before:
            row.add(
                R.FORRIGE_CHAIN,
                f"/Melding/Notifikasjon[{row.index}]/@notifikasjonForrigeGUID",
                f"notifikasjonForrigeGUID er ikke GUID-en til notifikasjonen med løpenummer "
                f"{_nr(row.lopenr - 1)}.",
            )


def _check_refs(rows: list[_Row], history: IplosHistory) -> None:
    """A correction or annulment names its original (N). One that names a notification KPR
    has not (yet) accepted is kept: the original may arrive later, or may itself have been
    dropped, and the correction then carries the valid content."""
    originals = {r.guid: r.status for r in rows if not r.dropped}
    refused_in_message = {r.guid: r.index for r in rows if r.dropped}
    for row in rows:
        if row.ref is None or row.status not in ("M", "C") or row.dropped:
            continue
        loc = f"/Melding/Notifikasjon[{row.index}]/@notifikasjonRef"
        target = originals.get(row.ref)
        if target is None and (stored := history.notifications.get(row.ref)) is not None:
            target = stored.status
        if target is None:
            row.add(
                R.REF_UNKNOWN,
                loc,
                resend.unknown_ref_text(
                    row.status, refused_in_message.get(row.ref), history.refused.get(row.ref)
                ),
            )
        elif target != "N":
            row.add(
                R.REF_UNKNOWN,
                loc,
                f"notifikasjonRef peker på en notifikasjon med status {target}, ikke på "
                "originalen (status N). Notifikasjonen er lagret.",
            )


def _check_brukere(rows: list[_Row], unit: str, history: IplosHistory) -> None:
    """brukerNr ↔ personidentifikasjon. A brukerNr now reported with another number is a
    warning (usually a corrected number, or a new one after a legal change): the row is
    kept, and a correction (M/C) replaces the pair. A person under a new brukerNr: warning."""
    by_bruker: dict[str, str] = {}  # brukerNr -> the fid the pair holds after the rows so far
    by_fid: dict[str, str] = {}
    history_by_fid: dict[str, str] | None = None
    for row in rows:
        # birth dates (typeID 9) are shared by many people: no identity to compare
        if (
            row.dropped
            or not row.fid_ok
            or row.type_id not in _ID_KIND_OF_TYPE
            or not row.bruker_nr
            or len(row.bruker_nr) > 100
        ):
            continue
        loc = f"{row.base}/Bruker/@brukerNr"
        before = by_bruker.get(row.bruker_nr) or history.bruker_fid.get((unit, row.bruker_nr))
        change = _FID_CHANGE_RULE.get(fid_change(before, row.fid)) if before is not None else None
        if change is R.BRUKERNR_STABLE:
            row.add(
                R.BRUKERNR_STABLE,
                loc,
                "brukerNr er tidligere rapportert med en annen personidentifikasjon i kommunen. "
                + (
                    "Korreksjonen er lagret og erstatter den tidligere personidentifikasjonen."
                    if row.status in ("M", "C")
                    else "Notifikasjonen er lagret. Er personidentifikasjonen rettet, send en "
                    "korreksjon (status M); ellers kontroller brukerNr i EPJ."
                ),
            )
        elif change is not None:
            row.add(
                change,
                loc,
                "brukerNr er tidligere rapportert med en annen type identifikasjon; "
                "notifikasjonen er tatt imot som samme person.",
            )
        if pair_moves(before, row.fid, row.status):
            by_bruker[row.bruker_nr] = row.fid
        if history_by_fid is None:
            history_by_fid = {f: b for (k, b), f in history.bruker_fid.items() if k == unit}
        other = history_by_fid.get(row.fid) or by_fid.get(row.fid)
        if other is not None and other != row.bruker_nr:
            row.add(
                R.BRUKERNR_CHANGED,
                loc,
                "Personen er tidligere rapportert med et annet brukerNr i kommunen.",
            )
        by_fid.setdefault(row.fid, row.bruker_nr)


_MAX_GAPS_SHOWN = 5


def _nr(lopenr: int) -> str:
    # a løpenummer of 10+ digits could be a fødselsnummer typed in the wrong field: the one
    # person-id masker decides, as everywhere else
    return mask_person_ids(str(lopenr))


def _gap_findings(rows: list[_Row], unit: str, history: IplosHistory) -> list[Finding]:
    """One warning naming the løpenummer still missing between the lowest and the highest
    KPR has from the municipality (in this environment), this message included."""
    # dropped rows of this message are already named by their own errors: not a gap here,
    # but they are not stored, so the next message reports them until they are sent again
    numbers = [r.lopenr for r in rows if r.lopenr is not None]
    missing = gaps(add_to_ranges(history.received.get(unit, ()), numbers))
    if not missing:
        return []
    total = sum(hi - lo + 1 for lo, hi in missing)
    shown = ", ".join(
        _nr(lo) if lo == hi else f"{_nr(lo)}–{_nr(hi)}" for lo, hi in missing[:_MAX_GAPS_SHOWN]
    )
    more = (
        f" og {len(missing) - _MAX_GAPS_SHOWN} hull til" if len(missing) > _MAX_GAPS_SHOWN else ""
    )
    return [
        Finding(
            R.LOPENR_GAP,
            "/Melding/Notifikasjon/@notifikasjonLopeNr",
            f"KPR mangler {_nr(total)} løpenummer fra kommunen: {shown}{more}. Send "
            "notifikasjonene som mangler (med sine opprinnelige løpenummer), eller kontroller "
            "uttrekket i EPJ.",
            Subject(kommune_nr=unit),
        )
    ]


# What a brukerNr's changed number is warned as (`FidChange`); no warning when absent.
_FID_CHANGE_RULE = {
    FidChange.KIND: R.BRUKERNR_ID_KIND,
    FidChange.OTHER: R.BRUKERNR_STABLE,
    FidChange.UNREADABLE: R.BRUKERNR_STABLE,
}


def _calendar_findings(rows: list[_Row], unit: str, ctx: ContentContext) -> list[Finding]:
    """Timeliness of the message against the configured reporting calendar (see
    app/content/calendar.py): production (and offline) only; a pilot address gets its pilot
    window instead; test addresses are not judged."""
    calendar = ctx.calendar
    if calendar is None or ctx.environment == "test":
        return []
    today = local_date(ctx.now)
    if ctx.environment == "pilot":
        windows = calendar.pilot_windows()
        if not windows or any(lo <= today <= hi for lo, hi in windows):
            return []
        shown = "; ".join(f"{lo:%d.%m.%Y}–{hi:%d.%m.%Y}" for lo, hi in windows)
        return [
            Finding(
                R.CALENDAR_PILOT_WINDOW,
                "/Melding",
                f"Meldingen er mottatt {today:%d.%m.%Y}; pilotperioden er {shown}.",
                Subject(kommune_nr=unit),
            )
        ]
    return timeliness_rows.calendar_findings(rows, unit, ctx)


@dataclass(frozen=True, slots=True, kw_only=True)
class _MessageLevel:
    findings: tuple[Finding, ...]
    contacts: tuple[Contact, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _ReadContact:
    contact: Contact
    findings: tuple[Finding, ...]


def _message_findings(
    root: etree._Element,
    contacts_el: list[etree._Element],
    kommuner: list[str],
    ctx: ContentContext,
) -> _MessageLevel:
    """What the message says outside its notifications: its texts, municipalities and
    contact persons."""
    read = [_read_contact(el, i) for i, el in enumerate(contacts_el, start=1)]
    findings = (
        *_text_lengths(root),
        *_kommune_findings(kommuner, ctx),
        *(f for r in read for f in r.findings),
        *_contacts_missing({r.contact.type for r in read}),
    )
    return _MessageLevel(findings=findings, contacts=tuple(r.contact for r in read))


def _text_lengths(root: etree._Element) -> tuple[Finding, ...]:
    return tuple(
        Finding(R.TEXT_LENGTH, f"/Melding/@{attr}", f"{attr} har {len(text)} tegn.")
        for attr in _TEXT_ATTRS
        if len(text := root.get(attr) or "") > 100
    )


def _kommune_findings(kommuner: list[str], ctx: ContentContext) -> tuple[Finding, ...]:
    findings: list[Finding] = []
    for i, kommune_nr in enumerate(kommuner, start=1):
        loc = f"/Melding/Kommune[{i}]/@kommuneNr"
        if _KOMMUNENR.fullmatch(kommune_nr) is None:
            findings.append(Finding(R.KOMMUNE_FORMAT, loc, "kommuneNr er ikke 4 siffer (0-9)."))
        elif ctx.allowed_kommuner is not None and kommune_nr not in ctx.allowed_kommuner:
            findings.append(
                Finding(
                    R.KOMMUNE_NOT_ALLOWED,
                    loc,
                    f"Avsenderen kan ikke rapportere for kommune {kommune_nr}.",
                    Subject(kommune_nr=kommune_nr),
                )
            )
    return tuple(findings)


def _read_contact(el: etree._Element, i: int) -> _ReadContact:
    """One Kontaktperson; a value that is not what its attribute must hold is ignored."""
    loc = f"/Melding/Kontaktperson[{i}]"
    findings: list[Finding] = []
    ctype = _contact_type(el.get("typeKontaktperson") or "")
    if ctype not in KONTAKTTYPER:
        findings.append(
            Finding(
                R.KONTAKT_TYPE,
                f"{loc}/@typeKontaktperson",
                "typeKontaktperson er ikke en kode i kodeverk 8471.",
            )
        )
    name: str | None = el.get("kontPerson")
    if name is not None and len(name) > 100:
        findings.append(
            Finding(R.TEXT_LENGTH, f"{loc}/@kontPerson", f"kontPerson har {len(name)} tegn.")
        )
        name = None
    emails: list[str | None] = []
    for attr in ("meldEpost1", "meldEpost2"):
        value = _stripped(el.get(attr))
        if value is not None and not is_email(value):
            findings.append(
                Finding(
                    R.EPOST_FORMAT,
                    f"{loc}/@{attr}",
                    f"{attr} er ikke en gyldig e-postadresse; verdien er ignorert.",
                )
            )
            value = None
        emails.append(value)
    phone = _stripped(el.get("meldTelefon"))
    if phone is not None and not is_phone(phone):
        findings.append(
            Finding(
                R.TELEFON_FORMAT,
                f"{loc}/@meldTelefon",
                "meldTelefon er ikke et norsk telefonnummer; verdien er ignorert.",
            )
        )
        phone = None
    contact = Contact(ctype, name, emails[0], emails[1], phone)
    return _ReadContact(contact=contact, findings=tuple(findings))


def _contacts_missing(types: set[str]) -> tuple[Finding, ...]:
    missing = [t for t in MANDATORY_KONTAKTTYPER if t not in types]
    if not missing:
        return ()
    return (
        Finding(
            R.KONTAKT_MISSING,
            "/Melding/Kontaktperson",
            "Meldingen mangler kontaktperson av type " + ", ".join(missing) + ".",
        ),
    )


def _contact_type(value: str) -> str:
    """A code of kodeverk 8471 as a number: "01" is code 1 (EPJs pad codes to two digits)."""
    value = value.strip()
    return str(int(value)) if _CODE.fullmatch(value) else value


def _stripped(value: str | None) -> str | None:
    """An address without the spaces around it (an EPJ field padded with a trailing space
    must not lose innsendingsansvarlig's address); None when nothing is left."""
    if value is None:
        return None
    return value.strip() or None


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_POSITION = re.compile(r",? line [0-9]+, column [0-9]+$")
_NUMBER = re.compile(r"[0-9]{3,}")


def _parse_error(exc: XmlRejected) -> str:
    """The parser's complaint without anything it quotes from the document (an attribute
    value, an entity name, a character reference could hold a number)."""
    cause = exc.__cause__
    if not isinstance(cause, etree.XMLSyntaxError):
        return str(exc)  # our own fixed texts (empty document, DOCTYPE)
    msg = _POSITION.sub("", (cause.msg or "").strip())
    msg = _NUMBER.sub("…", _QUOTED.sub("'…'", msg))
    return f"ikke velformet XML: {msg} (linje {cause.lineno})"


def _rows(
    notif_els: list[etree._Element], unit: str, xsd: _XsdReport, ctx: ContentContext
) -> list[_Row]:
    """Every notification read and checked on its own. A notification the schema refuses is
    dropped with the schema's findings and no rule runs on it (they assume its structure)."""
    rows: list[_Row] = []
    extracted_on = _local_date(ctx.extracted_at)
    for i, el in enumerate(notif_els, start=1):
        row = _read_row(i, el, unit)
        for finding in xsd.rows.get(i, ()):
            row.add(finding.rule, finding.location, finding.detail)
        if not row.dropped:
            _check_row(row, ctx, extracted_on)
            if not row.fid and row.event:
                # present but empty: as good as missing, which fails the whole message
                row.add(R.FID_MISSING, f"{row.base}/Bruker/@fid", "fid er tom.")
        rows.append(row)
    return rows


def _all_dropped(rows: list[_Row], findings: list[Finding]) -> list[Finding]:
    """A message none of whose notifications was taken is rejected: status 2 tells the sender
    that nothing of it was stored (status 3 would read as a partial success)."""
    if not rows or not all(r.dropped for r in rows):
        return []
    if any(f.rule.consequence is Consequence.REJECT_MESSAGE for f in findings):
        return []
    return [
        Finding(
            R.ALL_DROPPED,
            "/Melding",
            f"Ingen av meldingens {len(rows)} notifikasjoner er tatt imot.",
        )
    ]


def _notification(r: _Row, unit: str) -> Notification:
    # positional: this runs once per notification, and keywords cost more
    return Notification(
        r.index,
        r.guid,
        r.status,
        r.lopenr,
        r.forrige,
        r.ref,
        tuple([ev.stored() for ev in r.events]),
        unit,
        r.bruker_nr,
        r.fid,
        r.type_id,
        r.bydel,
        r.dropped,
        r.digest,
        r.already_stored,
        r.raw,
        tuple(dict.fromkeys(f.rule.id for f in r.findings)),
        tuple(
            dict.fromkeys(
                f.rule.id for f in r.findings if f.rule.consequence is Consequence.KEEP_WITH_ERROR
            )
        ),
        r.core_digest,
    )


def validate_melding(source: bytes | etree._Element, ctx: ContentContext) -> ContentResult:
    """Check an XPR(ipl) 56.0.0 `Melding` (bytes, or the element from MsgHead's Content)."""
    if isinstance(source, bytes):
        try:
            root = parse_xml(source, huge=True)
        except XmlRejected as exc:
            return ContentResult((Finding(R.NOT_XML, "/", _parse_error(exc)),), (), (), ())
    else:
        root = source
    xsd = _xsd_report(root)
    if xsd.rejected:
        row_findings = [f for i in sorted(xsd.rows) for f in xsd.rows[i]]
        named, contacts = salvaged(root)
        return ContentResult((*xsd.message, *row_findings), (), contacts, named)

    notif_els: list[etree._Element] = []
    contact_els: list[etree._Element] = []
    kommuner: list[str] = []
    for child in root:
        tag = child.tag
        if tag == NOTIFIKASJON:
            notif_els.append(child)
        elif tag == KONTAKTPERSON:
            contact_els.append(child)
        elif tag == KOMMUNE:
            kommuner.append(child.get("kommuneNr") or "")
    unit = kommuner[0]  # the schema guarantees at least one

    findings = list(xsd.message)  # only warnings when the schema did not reject
    message = _message_findings(root, contact_els, kommuner, ctx)
    findings.extend(message.findings)
    rows = _rows(notif_els, unit, xsd, ctx)  # each with its content digest
    findings.extend(_check_sequence(rows, unit, ctx))
    findings.extend(_calendar_findings(rows, unit, ctx))
    findings.extend(
        kommune_year_findings(kommuner, ([e.when for e in r.events] for r in rows), ctx)
    )
    for row in rows:
        findings.extend(row.findings)
    findings.extend(_all_dropped(rows, findings))
    notifications = tuple(_notification(r, unit) for r in rows)
    return ContentResult(
        tuple(findings),
        notifications,
        message.contacts,
        tuple(kommuner),
        melding=attributes_of(root),
        raw_contacts=tuple(attributes_of(el) for el in contact_els),
    )


def salvaged(root: etree._Element) -> tuple[tuple[str, ...], tuple[Contact, ...]]:
    """What a message the schema refused still tells, read leniently: its municipalities and
    contact persons, so its findings are filed under its municipality and its
    innsendingsansvarlig is told (issue 21). The contacts' own findings are left out: the
    schema's findings stand for the message. Nothing when the root is no Melding."""
    if root.tag != MELDING:
        return (), ()
    kommuner = tuple(el.get("kommuneNr") or "" for el in root if el.tag == KOMMUNE)
    contact_els = [el for el in root if el.tag == KONTAKTPERSON]
    contacts = tuple(_read_contact(el, i).contact for i, el in enumerate(contact_els, start=1))
    return kommuner, contacts


def content_digest(notification: etree._Element) -> str:
    """SHA-256 over the element names and attribute values of a Notifikasjon, in document
    order with attributes sorted: what "the same notification" means for a resend (GUIDs
    compared normalised, whitespace between elements ignored). The rows compute it while
    they read the notification (`_read_row`)."""
    parts: list[str] = []
    for el in notification.iter(etree.Element):  # elements only: no comments, PIs, entities
        _attributes(el, el.tag, parts)
    return _digest(parts)


def attributes_of(el: etree._Element) -> dict[str, str]:
    """An element's attributes as sent (lxml gives str; its stubs say str or bytes)."""
    return dict(cast("list[tuple[str, str]]", el.items()))


def _attributes(el: etree._Element, tag: str, parts: list[str]) -> dict[str, str]:
    """An element's attributes; its share of the content digest appended to `parts`: `<` +
    its name, then `\\0name=value` per attribute sorted by name (GUIDs normalised). Stored
    digests are compared with new ones: these bytes must never change."""
    items = cast("list[tuple[str, str]]", el.items())  # lxml gives str (stubs: or bytes)
    if len(items) > 1:
        items.sort()  # names are unique within an element: sorted by name
    parts.append("<" + tag)
    parts.extend([f"\x00{n}={normalize_guid(v) if n in _GUID_ATTRS else v}" for n, v in items])
    return dict(items)


def _digest(parts: list[str]) -> str:
    # one string, hashed once: the same bytes as one update per part
    return hashlib.sha256("".join(parts).encode()).hexdigest()


_GUID_ATTRS = frozenset(
    {
        "notifikasjonGUID",
        "notifikasjonForrigeGUID",
        "notifikasjonRef",
        "hendelseGUID",
        "pasientGUID",
    }
)


class KeyReader:
    """Collects the GUIDs, brukerNr, fids and løpenummer a `Melding` mentions (the history
    rows its checks need), from the whole tree or piece by piece as a stream reads it."""

    __slots__ = ("_brukere", "_fids", "_guids", "_hendelser", "_lopenrs", "_services")

    def __init__(self) -> None:
        self._hendelser: set[str] = set()
        self._guids: set[str] = set()
        self._brukere: set[str] = set()
        self._fids: set[str] = set()
        self._lopenrs: set[int] = set()
        self._services: set[tuple[str, str]] = set()

    def notification(self, notif: etree._Element) -> None:
        """A Notifikasjon's own attributes."""
        if guid := notif.get("notifikasjonGUID"):
            self._guids.add(guid_key(guid))
        if ref := notif.get("notifikasjonRef"):
            self._guids.add(guid_key(ref))
        lopenr = notif.get("notifikasjonLopeNr") or ""
        if _LOPENR.fullmatch(lopenr):
            self._lopenrs.update((int(lopenr), int(lopenr) - 1))

    def bruker(self, bruker: etree._Element) -> None:
        if bruker_nr := bruker.get("brukerNr"):
            self._brukere.add(bruker_nr)
        if fid := bruker.get("fid"):
            self._fids.add(fid)

    def event(self, event: etree._Element) -> None:
        if guid := event.get("hendelseGUID"):
            self._hendelser.add(guid_key(guid))
        kind = EVENTS.get(event.tag, "")
        if service_start.needs_start(kind, event.get("tjenesteType") or ""):
            # the service's start is looked up by its person and tjenesteID (rare: retired codes)
            bruker = event.find(BRUKER)
            bruker_nr = bruker.get("brukerNr") if bruker is not None else None
            if bruker_nr and (tjeneste_id := event.get("tjenesteID")):
                self._services.add((bruker_nr, tjeneste_id))

    def read(self, el: etree._Element) -> None:
        """Every Notifikasjon, event and Bruker in `el`, itself included."""
        # one pass: the sets do not keep order
        for node in el.iter(NOTIFIKASJON, BRUKER, *EVENTS):
            if node.tag == BRUKER:
                self.bruker(node)
            elif node.tag == NOTIFIKASJON:
                self.notification(node)
            else:
                self.event(node)

    def keys(self) -> HistoryKeys:
        return HistoryKeys(
            frozenset(self._guids),
            frozenset(self._brukere),
            frozenset(self._fids),
            frozenset(self._lopenrs),
            frozenset(self._hendelser),
            frozenset(self._services),
        )


def history_keys(root: etree._Element) -> HistoryKeys:
    """The GUIDs, brukerNr and fids a `Melding` mentions: the history rows its checks need."""
    reader = KeyReader()
    reader.read(root)
    return reader.keys()
