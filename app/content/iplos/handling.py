"""Each content rule against the handling that XPR(ipl)_Annotations.xsd gives the attribute it
checks, and where the service is stricter, or the Annotations do not cover the rule, why.
Rendered into docs/rules.md; tests/unit/test_annotations_handling.py reads the Annotations
file and checks every `code` here against it, and that no rule is stricter than its handling
without a reason.

The Annotations give per attribute and check (obligatorisk, type, kodeverk, range) a handling
code: 1 "Slettemerk melding" (reject the message), 2 "Slettemerk rad med underelementer" (drop
the row), 5 "Sett verdi til -1" (note it), 7 "Sett verdi til NULL", 9 "Ingen handling". A
rule with no `refs` is a KPR-side rule: the Annotations have no entry for what it checks
(sequence across messages, authorisation, the calendar, the structure); `why` says why it
exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.findings import Consequence

# every event element: "*/tjenesteType" names the attribute on each of them
EVENT_CLASSES = (
    "TjenesteStart",
    "MidlertidigStoppTil",
    "MidlertidigStoppFra",
    "TjenesteutforerEndret",
    "TjenesteSlutt",
)
CHECKS = ("obligat", "type", "kodeverk", "range")


@dataclass(frozen=True, slots=True, kw_only=True)
class Handling:
    """What the Annotations say for what a rule checks."""

    attribute: str  # e.g. "Bruker/@fid (obligatorisk)"; "–" when no attribute applies
    # "Class/attribute:check" per Annotations entry the rule applies (check in `CHECKS`;
    # class "*" for every event element); empty for a KPR-side rule
    refs: tuple[str, ...] = ()
    code: str = "–"  # the handling codes of `refs`, as the Annotations give them
    why: str = ""  # why the service is stricter, or why a KPR-side rule exists

    @property
    def kpr_side(self) -> bool:
        return not self.refs


# How much a consequence removes, and how much a handling code lets remove.
_REMOVES = {
    Consequence.MESSAGE_ERROR: 2,
    Consequence.REJECT_MESSAGE: 2,
    Consequence.DROP_NOTIFICATION: 1,
    Consequence.KEEP_WITH_ERROR: 0,
    Consequence.WARN: 0,
}
_ALLOWS = {"1": 2, "2": 1}


def allowed(code: str) -> int:
    """How much the strictest rule of these handling codes may remove: the least any of them
    allows (a rule applying to an attribute with handling 9 may remove nothing)."""
    codes = [c.strip() for c in code.split(",") if c.strip() and c.strip() != "–"]
    return min((_ALLOWS.get(c, 0) for c in codes), default=0)


def stricter(consequence: Consequence, handling: Handling) -> bool:
    """The rule removes more than the Annotations' handling of what it checks lets it."""
    return not handling.kpr_side and _REMOVES[consequence] > allowed(handling.code)


def expand(ref: str) -> list[tuple[str, str, str]]:
    """(class, attribute, check) for a ref; "*" stands for every event element."""
    where, check = ref.split(":")
    cls, attribute = where.split("/")
    classes = EVENT_CLASSES if cls == "*" else (cls,)
    return [(c, attribute, check) for c in classes]


def _ev(attribute: str, *checks: str) -> tuple[str, ...]:
    return tuple(f"*/{attribute}:{c}" for c in checks)


HANDLING: dict[str, Handling] = {
    "IPL-NOT-XML": Handling(attribute="–", why="Not XML: nothing can be read."),
    "IPL-XSD": Handling(
        attribute="versjon, meldingstype; a missing notifikasjonGUID or typeID; kommuneNr; "
        "the structure outside the notifications",
        refs=(
            "Melding/versjon:obligat",
            "Melding/versjon:type",
            "Melding/meldingstype:obligat",
            "Melding/meldingstype:type",
            "Notifikasjon/notifikasjonGUID:obligat",
            "Bruker/typeID:obligat",
            "Kommune/kommuneNr:obligat",
            "Kommune/kommuneNr:type",
        ),
        code="1, 9",
        why="versjon is fixed 56.0.0 and meldingstype fixed K (the schema's fixed values): a "
        "message of another version or type is not an IPLOS message of this schema. Without a "
        "kommuneNr, or with a structure the schema does not know, nothing can be attributed "
        "or read.",
    ),
    "IPL-XSD-ROW": Handling(
        attribute="Bruker/@brukerNr (obligatorisk, type); a notification's structure",
        refs=("Bruker/brukerNr:obligat", "Bruker/brukerNr:type"),
        code="2",
        why="An element the schema does not allow inside a notification (no Annotations "
        "entry): the row cannot be read.",
    ),
    "IPL-XSD-VALUE": Handling(
        attribute="a notification's values: a malformed notifikasjonGUID, notifikasjonRef, "
        "notifikasjonForrigeGUID or hendelseGUID, a date that is no date, a missing value",
        refs=(
            "Notifikasjon/notifikasjonGUID:type",
            "Notifikasjon/notifikasjonForrigeGUID:obligat",
            "Notifikasjon/notifikasjonForrigeGUID:type",
            "Notifikasjon/notifikasjonRef:type",
            "Notifikasjon/statusNotifikasjon:obligat",
            "Notifikasjon/notifikasjonLopeNr:obligat",
            *_ev("tjenesteType", "obligat"),
            *_ev("hendelseDato", "obligat", "type"),
            *_ev("tjenesteID", "obligat"),
            *_ev("hendelseGUID", "obligat", "type"),
            "TjenesteutforerEndret/tjenesteOrgNr:obligat",
        ),
        code="9",
        why="Kept and stored as sent, reported as an error. A malformed notifikasjonGUID "
        "cannot serve as a key: the row is keyed by `~` and the first 35 hex digits of the "
        "SHA-256 of the value as sent (36 characters like a GUID, never a GUID, the same for "
        "the same value): docs/rules.md.",
    ),
    "IPL-XSD-IGNORED": Handling(
        attribute="values KPR neither stores nor uses (texts, contacts, notifikasjonTid, "
        "pasientGUID, the moduleConstraint I attributes uttakDato, fraDatoPeriode, "
        "tilDatoPeriode, lopenr, kommuneOrgNr, kjonn, fodselsar, komNrHjem)",
        refs=(
            "Melding/leverandor:type",
            "Melding/uttakDato:obligat",
            "Melding/fraDatoPeriode:obligat",
            "Melding/tilDatoPeriode:obligat",
            "Melding/lopenr:type",
            "Notifikasjon/notifikasjonTid:type",
            "Kontaktperson/kontPerson:type",
            *_ev("hendelseRegTid", "type"),
        ),
        code="1, 7, 9",
        why="Noted, not stored; the rest of the message is taken in. The handling 1 of "
        "uttakDato, fraDatoPeriode and tilDatoPeriode is for the modules that use them "
        "(moduleConstraint I: not used by ipl), so they are ignored like lopenr and kjonn.",
    ),
    "IPL-ALL-DROPPED": Handling(
        attribute="–",
        why="Decision (DOMAIN.md 2.5): when every notification is dropped nothing was "
        "received, so the AppRec says Avvist (2), not 3.",
    ),
    "IPL-EVENT-PERSON": Handling(
        attribute="<event>/Bruker (structure)",
        why="A notification is about one person; events naming different persons cannot be "
        "stored as one row.",
    ),
    "IPL-TYPEID-KIND": Handling(
        attribute="Bruker/@typeID against the value in @fid",
        refs=("Bruker/typeID:type",),
        code="9",
        why="Stored as the kind the value shows (a D-nummer under typeID 1, a fødselsnummer "
        "under typeID 9, a ddmmyy birth date under typeID 1), with a warning.",
    ),
    "IPL-HENDELSEDATO-FUTURE": Handling(
        attribute="<event>/@hendelseDato (range against MsgHead GenDate)",
        refs=_ev("hendelseDato", "range"),
        code="9",
    ),
    "IPL-GUID-UNIQUE": Handling(
        attribute="Notifikasjon/@notifikasjonGUID (unique)",
        why="Uniqueness is the schema's key, not an Annotations check. A GUID used twice "
        "leaves the first row identified: only the later rows are dropped, as two rows "
        "cannot be stored under one key. GUIDs are compared without braces and case.",
    ),
    "IPL-KOMMUNE-UNIQUE": Handling(
        attribute="Kommune/@kommuneNr (unique)",
        why="The schema's key: the first Kommune is the reporting unit; a repeated one makes "
        "it ambiguous.",
    ),
    "IPL-FID-MISSING": Handling(
        attribute="Bruker/@fid (obligatorisk)", refs=("Bruker/fid:obligat",), code="1"
    ),
    "IPL-KOMMUNE-FORMAT": Handling(
        attribute="Kommune/@kommuneNr (type)",
        refs=("Kommune/kommuneNr:type",),
        code="9",
        why="Without a municipality number nothing in the message can be attributed.",
    ),
    "IPL-KOMMUNE-NOT-ALLOWED": Handling(
        attribute="–",
        why="Authorisation, not in the Annotations: a municipality reports only for itself.",
    ),
    "IPL-KOMMUNE-YEAR": Handling(
        attribute="Kommune/@kommuneNr (SSB's list of the reporting year)",
        why="KPR-side: the Annotations check only the form (handling 9) and have no code "
        "list for kommuneNr. A number not in the reporting year's list is a warning naming "
        "the number in force (docs/rules.md, Decisions).",
    ),
    "IPL-EVENT-COUNT": Handling(
        attribute="Notifikasjon (structure)",
        why="The schema allows a notification without events (an annulment needs none): it "
        "is kept and stored, and reported so the municipality checks it.",
    ),
    "IPL-STATUS-CODE": Handling(
        attribute="Notifikasjon/@statusNotifikasjon (kodeverk 7316)",
        refs=("Notifikasjon/statusNotifikasjon:kodeverk",),
        code="9",
        why="Kept and stored with the error; the register applies only N, M and C.",
    ),
    "IPL-REF-MISSING": Handling(
        attribute="Notifikasjon/@notifikasjonRef (attributeUse)",
        refs=("Notifikasjon/notifikasjonRef:type",),
        code="9",
        why="Kept and stored with the error; a correction naming no original stands alone.",
    ),
    "IPL-REF-UNKNOWN": Handling(
        attribute="Notifikasjon/@notifikasjonRef",
        refs=("Notifikasjon/notifikasjonRef:type",),
        code="9",
        why="Kept with a warning: the original may arrive later (reordering) or may have "
        "been dropped, and the correction then carries the valid content.",
    ),
    "IPL-GUID-KNOWN": Handling(
        attribute="Notifikasjon/@notifikasjonGUID (history)",
        why="History across messages, not in the Annotations. An identical resend is no "
        "error and is not stored twice. Other content under a stored GUID is dropped: "
        "accepting it would replace data without a correction (M).",
    ),
    "IPL-HENDELSE-GUID-KNOWN": Handling(
        attribute="<event>/@hendelseGUID",
        refs=_ev("hendelseGUID", "type"),
        code="9",
        why="Kept with a warning (issue 19): an event resent under a new notification is "
        "stored, and the register's episodes count it once.",
    ),
    "IPL-FORRIGE-CHAIN": Handling(
        attribute="Notifikasjon/@notifikasjonForrigeGUID",
        refs=("Notifikasjon/notifikasjonForrigeGUID:type",),
        code="9",
        why="Checked only against a predecessor KPR has; a missing one is a gap.",
    ),
    "IPL-LOPENR-FORMAT": Handling(
        attribute="Notifikasjon/@notifikasjonLopeNr (type)",
        refs=("Notifikasjon/notifikasjonLopeNr:type",),
        code="9",
        why="The row is kept without a løpenummer; completeness cannot count it.",
    ),
    "IPL-LOPENR-ORDER": Handling(
        attribute="Notifikasjon/@notifikasjonLopeNr (order)",
        refs=("Notifikasjon/notifikasjonLopeNr:type",),
        code="9",
        why="Messages arrive out of order and dropped rows are sent again with their number: "
        "order is for completeness, never a reason to drop.",
    ),
    "IPL-LOPENR-GAP": Handling(
        attribute="Notifikasjon/@notifikasjonLopeNr (completeness)",
        refs=("Notifikasjon/notifikasjonLopeNr:type",),
        code="9",
        why="The gap report per environment and municipality, repeated until filled.",
    ),
    "IPL-TJENESTETYPE-CODE": Handling(
        attribute="<event>/@tjenesteType (kodeverk 9151, validationDate)",
        refs=_ev("tjenesteType", "kodeverk"),
        code="9",
        why="Kept and stored with the error, so the municipality corrects the service type "
        "(judged at the service's start: the TjenesteStart's hendelseDato for the same "
        "tjenesteID, the validationDate tjenesteStartDato).",
    ),
    "IPL-TJENESTETYPE-START-UNKNOWN": Handling(
        attribute="<event>/@tjenesteType (kodeverk 9151, validationDate tjenesteStartDato)",
        refs=_ev("tjenesteType", "kodeverk"),
        code="9",
        why="The service's start is neither in the message nor in the register store: the "
        "code cannot be judged at it, so the event is accepted with a warning.",
    ),
    "IPL-ORGNR-REQUIRED": Handling(
        attribute="TjenesteutforerEndret/@tjenesteOrgNr (obligatorisk, type)",
        refs=(
            "TjenesteutforerEndret/tjenesteOrgNr:obligat",
            "TjenesteutforerEndret/tjenesteOrgNr:type",
        ),
        code="9",
        why="Kept and stored as sent with the error; the notification's other events too.",
    ),
    "IPL-ORGNR-INVALID": Handling(
        attribute="<event>/@tjenesteOrgNr (type)",
        refs=tuple(
            f"{c}/tjenesteOrgNr:type" for c in EVENT_CLASSES if c != "TjenesteutforerEndret"
        ),
        code="9",
        why="The value is not used (as handling 7) so no invalid number enters KPR's "
        "episodes; the register store keeps it as sent.",
    ),
    "IPL-TYPEID-CODE": Handling(
        attribute="Bruker/@typeID (kodeverk 9032)", refs=("Bruker/typeID:kodeverk",), code="2"
    ),
    "IPL-FID-INVALID": Handling(
        attribute="Bruker/@fid (type)",
        refs=("Bruker/fid:type",),
        code="9",
        why="Kept and stored with the error (E31) so the municipality corrects the number.",
    ),
    "IPL-FID-DATE": Handling(
        attribute="Bruker/@fid with typeID 9",
        refs=("Bruker/fid:type",),
        code="9",
        why="As IPL-FID-INVALID.",
    ),
    "IPL-CODE-LEADING-ZERO": Handling(
        attribute="<event>/@tjenesteType, Bruker/@typeID (type)",
        refs=(*_ev("tjenesteType", "type"), "Bruker/typeID:type"),
        code="9",
        why='Decision: a leading zero does not make another code. "08" is read as 8 and '
        '"01" as 1 (as typeKontaktperson "01" is), with a warning; the register store '
        "keeps the value as sent and the reading beside it (tjeneste_type_tolket, "
        "type_id_tolket).",
    ),
    "IPL-FID-SYNTHETIC": Handling(
        attribute="Bruker/@fid",
        why="Decision (DOMAIN.md 2.6): synthetic test identities only on pilot/test addresses.",
    ),
    "IPL-BRUKERNR-FORMAT": Handling(
        attribute="Bruker/@brukerNr (obligatorisk, type)",
        refs=("Bruker/brukerNr:obligat", "Bruker/brukerNr:type"),
        code="2",
    ),
    "IPL-BRUKERNR-STABLE": Handling(
        attribute="Bruker/@brukerNr (attributeUse: entydig i kommunen)",
        why="History across messages. A warning: usually a corrected number or a new one "
        "after a legal change. The row is kept; an accepted correction (M/C) replaces the "
        "stored pair.",
    ),
    "IPL-BRUKERNR-CHANGED": Handling(
        attribute="Bruker/@brukerNr (attributeUse)",
        why="History across messages; a warning.",
    ),
    "IPL-BRUKERNR-ID-KIND": Handling(
        attribute="Bruker/@brukerNr, @typeID",
        why="History across messages; a warning.",
    ),
    "IPL-BYDEL-FORMAT": Handling(
        attribute="Bruker/@bydel (type)",
        refs=("Bruker/bydel:type",),
        code="9",
        why="Noted and not used (as handling 7).",
    ),
    "IPL-HENDELSEDATO-RANGE": Handling(
        attribute="<event>/@hendelseDato (range)", refs=_ev("hendelseDato", "range"), code="9"
    ),
    "IPL-KONTAKT-MISSING": Handling(
        attribute="Kontaktperson/@typeKontaktperson",
        refs=("Kontaktperson/typeKontaktperson:obligat",),
        code="9",
    ),
    "IPL-KONTAKT-TYPE": Handling(
        attribute="Kontaktperson/@typeKontaktperson (kodeverk 8471)",
        refs=("Kontaktperson/typeKontaktperson:kodeverk",),
        code="5",
    ),
    "IPL-EPOST-FORMAT": Handling(
        attribute="Kontaktperson/@meldEpost1, @meldEpost2 (type)",
        refs=("Kontaktperson/meldEpost1:type", "Kontaktperson/meldEpost2:type"),
        code="9",
        why="Noted and not used (as handling 7): no email is sent to an invalid address.",
    ),
    "IPL-TELEFON-FORMAT": Handling(
        attribute="Kontaktperson/@meldTelefon (type)",
        refs=("Kontaktperson/meldTelefon:type",),
        code="9",
        why="Noted and not used (as handling 7).",
    ),
    "IPL-TEXT-LENGTH": Handling(
        attribute="Melding/@leverandor, @navnEPJ, ...; Kontaktperson/@kontPerson (type)",
        refs=(
            "Melding/leverandor:type",
            "Melding/navnEPJ:type",
            "Melding/versjonEPJ:type",
            "Melding/versjonUt:type",
            "Kontaktperson/kontPerson:type",
        ),
        code="7",
    ),
    "IPL-CALENDAR-LATE": Handling(
        attribute="–",
        why="The letter's calendar (configured), production only; a warning.",
    ),
    "IPL-CALENDAR-AFTER-CORRECTION": Handling(
        attribute="–",
        why="As IPL-CALENDAR-LATE, after the correction deadline.",
    ),
    "IPL-CALENDAR-PILOT-WINDOW": Handling(
        attribute="–",
        why="The configured pilot window, pilot addresses only; a warning.",
    ),
}
