"""Message-level rules: Kontaktperson, Kommune and the free-text lengths of the header."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from app.content.iplos import rules as R
from app.content.iplos.codes import (
    _CODE,
    _KOMMUNENR,
    _TEXT_ATTRS,
    KONTAKTTYPER,
    MANDATORY_KONTAKTTYPER,
    is_email,
    is_phone,
)
from app.content.model import (
    Contact,
    ContentContext,
)
from app.core.findings import Finding, Subject


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
