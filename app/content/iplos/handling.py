"""Each content rule against the handling that XPR(ipl)_Annotations.xsd gives the attribute it
checks, and where the service deliberately differs, why. Rendered into docs/rules.md.

The Annotations give per attribute and check (obligatorisk, type, kodeverk, range) a handling
code: 1 reject the message, 2 drop the row with its children, 5 (unexplained in the
published file; read as "note it"), 7 set the value to NULL, 9 no action. Rules about what
the Annotations do not cover (sequence across messages, authorisation, the calendar) say so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Handling:
    """What the Annotations say for the attribute a rule checks."""

    attribute: str  # e.g. "Bruker/@fid (obligatorisk)"; "–" when no attribute applies
    code: str  # the Annotations' handling code(s), or "–"
    follows: bool  # the rule's consequence is the Annotations' handling
    why: str = ""  # when it differs, or what the Annotations do not cover


HANDLING: dict[str, Handling] = {
    "IPL-NOT-XML": Handling(
        attribute="–", code="–", follows=True, why="Not XML: nothing can be read."
    ),
    "IPL-XSD": Handling(
        attribute="structure and datatypes",
        code="per attribute",
        follows=True,
        why="Rejects the message only for what the Annotations reject (versjon, "
        "notifikasjonGUID, fid, typeID: handling 1), the Melding's own codes and periods, "
        "kommuneNr and structure outside the notifications; other schema errors are "
        "IPL-XSD-ROW or IPL-XSD-IGNORED.",
    ),
    "IPL-XSD-ROW": Handling(
        attribute="a value inside a notification (type)",
        code="2 (brukerNr); 9 (event values)",
        follows=False,
        why="brukerNr follows handling 2. The event values have handling 9, but the row "
        "would be stored with them: it is dropped rather than stored broken.",
    ),
    "IPL-XSD-IGNORED": Handling(
        attribute="values KPR neither stores nor uses (texts, contacts, notifikasjonTid, ...)",
        code="7, 9",
        follows=True,
        why="Noted, not stored; the rest of the message is taken in.",
    ),
    "IPL-ALL-DROPPED": Handling(
        attribute="–",
        code="–",
        follows=False,
        why="Decision (DOMAIN.md 2.5): when every notification is dropped nothing was "
        "received, so the AppRec says Avvist (2), not 3.",
    ),
    "IPL-EVENT-PERSON": Handling(
        attribute="<event>/Bruker (structure)",
        code="–",
        follows=False,
        why="A notification is about one person; events naming different persons cannot be "
        "stored as one row.",
    ),
    "IPL-TYPEID-KIND": Handling(
        attribute="Bruker/@typeID against the number in @fid",
        code="9 (type)",
        follows=True,
        why="Stored as the kind the number shows, with a warning.",
    ),
    "IPL-HENDELSEDATO-FUTURE": Handling(
        attribute="<event>/@hendelseDato (range against MsgHead GenDate)",
        code="9",
        follows=True,
    ),
    "IPL-GUID-UNIQUE": Handling(
        attribute="Notifikasjon/@notifikasjonGUID (unique)",
        code="1 (obligatorisk)",
        follows=False,
        why="Handling 1 is for a missing GUID. A GUID used twice leaves the first row "
        "identified: only the later rows are dropped. GUIDs are compared without braces and "
        "case, which the schema's string comparison does not do.",
    ),
    "IPL-KOMMUNE-UNIQUE": Handling(
        attribute="Kommune/@kommuneNr (unique)",
        code="9",
        follows=False,
        why="The first Kommune is the reporting unit; a repeated one makes it ambiguous.",
    ),
    "IPL-FID-MISSING": Handling(attribute="Bruker/@fid (obligatorisk)", code="1", follows=True),
    "IPL-KOMMUNE-FORMAT": Handling(
        attribute="Kommune/@kommuneNr (type)",
        code="9",
        follows=False,
        why="Without a municipality number nothing in the message can be attributed.",
    ),
    "IPL-KOMMUNE-NOT-ALLOWED": Handling(
        attribute="–",
        code="–",
        follows=False,
        why="Authorisation, not in the Annotations: a municipality reports only for itself.",
    ),
    "IPL-EVENT-COUNT": Handling(
        attribute="Notifikasjon (structure)",
        code="–",
        follows=False,
        why="A notification without an event carries nothing to store.",
    ),
    "IPL-STATUS-CODE": Handling(
        attribute="Notifikasjon/@statusNotifikasjon (kodeverk 7316)",
        code="9",
        follows=False,
        why="N, M and C are different operations; a row with another status cannot be "
        "applied, so it is dropped rather than guessed.",
    ),
    "IPL-REF-MISSING": Handling(
        attribute="Notifikasjon/@notifikasjonRef (attributeUse)",
        code="9",
        follows=False,
        why="A correction or annulment that names no original cannot be applied.",
    ),
    "IPL-REF-UNKNOWN": Handling(
        attribute="Notifikasjon/@notifikasjonRef",
        code="9",
        follows=True,
        why="Kept with a warning: the original may arrive later (reordering) or may have "
        "been dropped, and the correction then carries the valid content.",
    ),
    "IPL-GUID-KNOWN": Handling(
        attribute="Notifikasjon/@notifikasjonGUID",
        code="9 (type)",
        follows=False,
        why="An identical resend is no error and is not stored twice. Other content under a "
        "stored GUID is dropped: accepting it would replace data without a correction (M).",
    ),
    "IPL-HENDELSE-GUID-KNOWN": Handling(
        attribute="TjenesteStart (and the other events)/@hendelseGUID",
        code="9",
        follows=True,
        why="Kept with a warning (issue 19): an event resent under a new notification is "
        "stored, and the register's episodes count it once.",
    ),
    "IPL-FORRIGE-CHAIN": Handling(
        attribute="Notifikasjon/@notifikasjonForrigeGUID",
        code="9",
        follows=True,
        why="Checked only against a predecessor KPR has; a missing one is a gap.",
    ),
    "IPL-LOPENR-FORMAT": Handling(
        attribute="Notifikasjon/@notifikasjonLopeNr (type)",
        code="9",
        follows=True,
        why="The row is kept without a løpenummer; completeness cannot count it.",
    ),
    "IPL-LOPENR-ORDER": Handling(
        attribute="Notifikasjon/@notifikasjonLopeNr (order)",
        code="9",
        follows=True,
        why="Messages arrive out of order and dropped rows are sent again with their number: "
        "order is for completeness, never a reason to drop.",
    ),
    "IPL-LOPENR-GAP": Handling(
        attribute="Notifikasjon/@notifikasjonLopeNr (completeness)",
        code="9",
        follows=True,
        why="The gap report per environment and municipality, repeated until filled.",
    ),
    "IPL-TJENESTETYPE-CODE": Handling(
        attribute="<event>/@tjenesteType (kodeverk 9151, validationDate)",
        code="9",
        follows=False,
        why="A row without a service type valid at the service's start (validationDate "
        "tjenesteStartDato: the TjenesteStart's hendelseDato for the same tjenesteID) is "
        "unusable for KPR's statistics; it is dropped so the municipality corrects it.",
    ),
    "IPL-TJENESTETYPE-START-UNKNOWN": Handling(
        attribute="<event>/@tjenesteType (kodeverk 9151, validationDate tjenesteStartDato)",
        code="9",
        follows=True,
        why="The service's start is neither in the message nor in the register store: the "
        "code cannot be judged at it, so the event is accepted with a warning.",
    ),
    "IPL-ORGNR-REQUIRED": Handling(
        attribute="TjenesteutforerEndret/@tjenesteOrgNr (obligatorisk)",
        code="9",
        follows=False,
        why="The new provider is the whole content of this event.",
    ),
    "IPL-ORGNR-INVALID": Handling(
        attribute="<event>/@tjenesteOrgNr (type)",
        code="9",
        follows=False,
        why="The value is not stored (as handling 7) so no invalid number enters KPR.",
    ),
    "IPL-TYPEID-CODE": Handling(attribute="Bruker/@typeID (kodeverk 9032)", code="2", follows=True),
    "IPL-FID-INVALID": Handling(
        attribute="Bruker/@fid (type)",
        code="9",
        follows=False,
        why="A number that identifies no one cannot be linked to a person: the row is "
        "dropped (E31) so the municipality corrects the number.",
    ),
    "IPL-FID-DATE": Handling(
        attribute="Bruker/@fid with typeID 9",
        code="9",
        follows=False,
        why="As IPL-FID-INVALID: a birth date that is no date identifies no one.",
    ),
    "IPL-FID-SYNTHETIC": Handling(
        attribute="Bruker/@fid",
        code="–",
        follows=False,
        why="Decision (DOMAIN.md 2.6): synthetic test identities only on pilot/test addresses.",
    ),
    "IPL-BRUKERNR-FORMAT": Handling(
        attribute="Bruker/@brukerNr (obligatorisk, type)", code="2", follows=True
    ),
    "IPL-BRUKERNR-STABLE": Handling(
        attribute="Bruker/@brukerNr (attributeUse: entydig i kommunen)",
        code="–",
        follows=True,
        why="A warning: usually a corrected number or a new one after a legal change. The row "
        "is kept; an accepted correction (M/C) replaces the stored pair.",
    ),
    "IPL-BRUKERNR-CHANGED": Handling(
        attribute="Bruker/@brukerNr (attributeUse)", code="–", follows=True
    ),
    "IPL-BRUKERNR-ID-KIND": Handling(attribute="Bruker/@brukerNr, @typeID", code="–", follows=True),
    "IPL-BYDEL-FORMAT": Handling(
        attribute="Bruker/@bydel (type)",
        code="9",
        follows=False,
        why="Noted and not stored (as handling 7).",
    ),
    "IPL-HENDELSEDATO-RANGE": Handling(
        attribute="<event>/@hendelseDato (range)", code="9", follows=True
    ),
    "IPL-KONTAKT-MISSING": Handling(
        attribute="Kontaktperson/@typeKontaktperson", code="9", follows=True
    ),
    "IPL-KONTAKT-TYPE": Handling(
        attribute="Kontaktperson/@typeKontaktperson (kodeverk 8471)", code="5", follows=True
    ),
    "IPL-EPOST-FORMAT": Handling(
        attribute="Kontaktperson/@meldEpost1, @meldEpost2 (type)",
        code="9",
        follows=False,
        why="Noted and not stored (as handling 7): no email is sent to an invalid address.",
    ),
    "IPL-TELEFON-FORMAT": Handling(
        attribute="Kontaktperson/@meldTelefon (type)",
        code="9",
        follows=False,
        why="Noted and not stored (as handling 7).",
    ),
    "IPL-TEXT-LENGTH": Handling(
        attribute="Melding/@leverandor, @navnEPJ, ... (type)", code="7", follows=True
    ),
    "IPL-CALENDAR-LATE": Handling(
        attribute="–",
        code="–",
        follows=True,
        why="The letter's calendar (configured), production only; a warning.",
    ),
    "IPL-CALENDAR-AFTER-CORRECTION": Handling(
        attribute="–",
        code="–",
        follows=True,
        why="As IPL-CALENDAR-LATE, after the correction deadline.",
    ),
    "IPL-CALENDAR-PILOT-WINDOW": Handling(
        attribute="–",
        code="–",
        follows=True,
        why="The configured pilot window, pilot addresses only; a warning.",
    ),
}
