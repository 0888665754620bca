"""The XSD pass of the IPLOS validator: libxml2's schema errors, made safe to show and handled
where they sit (see the decisions in app/content/iplos/validate.py)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from lxml import etree

from app.content.iplos import rules as R
from app.content.iplos.codes import _Q, NOTIFIKASJON, NS
from app.core.findings import Consequence, Finding, Rule
from app.core.schemas import SCHEMAS_DIR, load_schema

_SCHEMA = "iplos-56.0.0/XPR-ipl-56.0.0.xsd"
SCHEMA_PATH = SCHEMAS_DIR / _SCHEMA

_MAX_XSD_FINDINGS = 50


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
