"""IPLOS 56.0.0 vocabulary for the validator: namespace, element names, code lists
(kodeverk) and the field patterns, shared by the modules of app/content/iplos/validate.py."""

from __future__ import annotations

import datetime
import re
from zoneinfo import ZoneInfo

from app.identifiers import (
    IdKind,
)

NS = "http://www.npr.no/xmlstds/56_0_0_ipl"

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
_TEXT_ATTRS = ("leverandor", "navnEPJ", "versjonEPJ", "versjonUt")

_OSLO = ZoneInfo("Europe/Oslo")


def is_email(value: str) -> bool:
    return _EMAIL.fullmatch(value) is not None


def is_phone(value: str) -> bool:
    return _PHONE.fullmatch(value) is not None
