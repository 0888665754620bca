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

import re

from lxml import etree

from app.content.iplos import rules as R
from app.content.iplos.codes import (
    BRUKER,
    KOMMUNE,
    KONTAKTPERSON,
    MELDING,
    NOTIFIKASJON,
    RETIRED_TJENESTETYPER_UNTIL,
)
from app.content.iplos.digest import attributes_of, history_keys
from app.content.iplos.kommune_year import kommune_year_findings
from app.content.iplos.message import _message_findings, _MessageLevel, _read_contact
from app.content.iplos.rows import _check_row, _read_row, _Row, tjenestetype_valid
from app.content.iplos.schema import _xsd_report, _XsdReport, describe_schema_error, safe_name
from app.content.iplos.sequence import _calendar_findings, _check_sequence, _local_date
from app.content.model import Contact, ContentContext, ContentResult, Notification
from app.core.findings import Consequence, Finding
from app.core.xmlparse import XmlRejected, parse_xml

# The validator lives in the sibling modules (codes, schema, rows, sequence, message, digest).
# The names below stay importable from here for the content tests, which import them from this
# module; new code imports them from the module that defines them.
__all__ = [
    "BRUKER",
    "NOTIFIKASJON",
    "RETIRED_TJENESTETYPER_UNTIL",
    "_read_row",
    "describe_schema_error",
    "history_keys",
    "safe_name",
    "salvaged",
    "tjenestetype_valid",
    "validate_melding",
]

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


def _notifications(rows: list[_Row], unit: str) -> tuple[Notification, ...]:
    """The rows' results in order, `rows` emptied as they are made so each row is let go as
    soon as its result is there: 100 000 rows and their results together were the check's
    peak of memory."""
    rows.reverse()
    out = []
    while rows:
        out.append(_notification(rows.pop(), unit))
    return tuple(out)


def _content_result(
    findings: list[Finding],
    rows: list[_Row],
    *,
    unit: str,
    kommuner: list[str],
    message: _MessageLevel,
    melding: etree._Element,
    contact_els: list[etree._Element],
    ctx: ContentContext,
) -> ContentResult:
    """The checks across rows (sequence, calendar, the municipality's year) after the
    message's own, each row's findings, and the result: shared by the whole-document
    validation and the streamed one (`app.content.iplos.stream`). Empties `rows`."""
    findings.extend(_check_sequence(rows, unit, ctx))
    findings.extend(_calendar_findings(rows, unit, ctx))
    findings.extend(
        kommune_year_findings(kommuner, ([e.when for e in r.events] for r in rows), ctx)
    )
    for row in rows:
        findings.extend(row.findings)
    findings.extend(_all_dropped(rows, findings))
    return ContentResult(
        tuple(findings),
        _notifications(rows, unit),
        message.contacts,
        tuple(kommuner),
        melding=attributes_of(melding),
        raw_contacts=tuple(attributes_of(el) for el in contact_els),
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
    return _content_result(
        findings,
        rows,
        unit=unit,
        kommuner=kommuner,
        message=message,
        melding=root,
        contact_els=contact_els,
        ctx=ctx,
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
