"""Retention's masking of a stored AppRec: brukerNr and fødselsnummer out of its text.

The AppRec names each failing notification by its brukerNr in an Error's OT ("Notifikasjon
nr. 3 (notifikasjonGUID G, brukerNr B, løpenummer 3) er ikke tatt imot: ..."), and a
finding's detail may quote it again. When retention takes brukerNr and fid out of the
findings, the stored AppRec text (`receipt.apprec_xml`, what
`GET /api/v1/messages/{id}/apprec` shows) loses them too:

- the label's brukerNr, whatever it is;
- every brukerNr the message's findings still name, wherever it stands as a whole word;
- every run that could be a fødselsnummer (`mask_person_ids`: 10+ digits, an 11-digit
  number split after the birth date). The fid itself needs no key to be found: it is
  11 digits, and the AppRec never held it otherwise (app/apprec/mapping.py).

Only the OT attributes change: status, codes, GUIDs and ids stay, so the AppRec still says
what happened to which notification. The reply bytes sent (`receipt.body`, encrypted to the
sender) are not touched: a resend of the same ebXML message still gets them byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lxml import etree

from app.core.xmlparse import XmlRejected, parse_xml
from app.identifiers import PERSON_ID_MASK, mask_person_ids

MASK = "***"
# the brukerNr in the OT's label of a notification (app/apprec/mapping.py, `row_label`):
# "(notifikasjonGUID G, brukerNr B, løpenummer L) er ...", the løpenummer and the parenthesis
# optional; older receipts wrote "brukerNr B er ikke tatt imot:"
_LABEL = re.compile(
    r"(brukerNr )(.+?)(, løpenummer -?\d+\)|\)(?= er | og |;|,|\.)| er ikke tatt imot:| er lagret)"
)
# a known brukerNr shorter than this is not searched for elsewhere in the text: it would
# mask unrelated words ("B1" in "IPL-B1-..."); the label still masks it
MIN_KNOWN_LENGTH = 3


def redact_text(text: str, bruker_nrs: Iterable[str] = ()) -> str:
    """`text` without the brukerNr of its label, the `bruker_nrs` given, or anything that
    could be a fødselsnummer."""
    text = _LABEL.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    for value in sorted(set(bruker_nrs), key=len, reverse=True):
        if len(value) >= MIN_KNOWN_LENGTH:
            whole = rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])"
            text = re.sub(whole, MASK, text)
    return mask_person_ids(text)


def redact_apprec(xml: bytes, bruker_nrs: Iterable[str] = ()) -> bytes:
    """The AppRec with every OT attribute redacted (`redact_text`). A stored text that is
    not XML (never written by this service) is redacted as one text."""
    known = list(bruker_nrs)
    try:
        root = parse_xml(xml)
    except XmlRejected:
        return redact_text(xml.decode("utf-8", "replace"), known).encode("utf-8")
    for element in root.iter(etree.Element):
        ot = element.get("OT")
        if ot:
            element.set("OT", redact_text(ot, known))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


__all__ = ["MASK", "PERSON_ID_MASK", "redact_apprec", "redact_text"]
