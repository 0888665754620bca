"""SSB Klass 131 (kommuneinndeling) as SSB exports it: a `;`-separated CSV with the columns
code, parentCode, level, name, shortName, notes, validFrom, validTo. Pure, no I/O."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

_CODE = re.compile(r"[0-9]{4}")
_YEAR_IN_NAME = re.compile(r"(?<![0-9])(20[0-9]{2}|19[0-9]{2})(?![0-9])")
REQUIRED_COLUMNS = ("code", "level", "name")
# SSB's "Uoppgitt" (unknown) is a code of the classification, not a municipality.
NOT_A_KOMMUNE = frozenset({"9999"})


class SsbFormatError(ValueError):
    """The file is not a Klass 131 export of the expected layout."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Kommune:
    kommune_nr: str
    name: str


def parse_klass_131(data: bytes) -> list[Kommune]:
    """The municipalities (level 1) of an SSB export, sorted by number. Raises SsbFormatError."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")  # older exports from SSB's web page
        except UnicodeDecodeError as exc:
            raise SsbFormatError("not UTF-8 or Windows-1252 text") from exc
    reader = csv.DictReader(io.StringIO(text), delimiter=";")
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise SsbFormatError(f"missing columns {missing}: expected SSB Klass 131 CSV (;)")
    found: dict[str, Kommune] = {}
    for line, row in enumerate(reader, start=2):
        code = (row.get("code") or "").strip()
        if (row.get("level") or "1").strip() != "1" or code in NOT_A_KOMMUNE:
            continue
        if not _CODE.fullmatch(code):
            raise SsbFormatError(f"line {line}: '{code}' is not a 4-digit kommunenummer")
        name = " ".join((row.get("name") or "").split())
        if not name or len(name) > 200:
            raise SsbFormatError(f"line {line}: kommune {code} has no usable name")
        if code in found:
            raise SsbFormatError(f"line {line}: kommune {code} appears twice")
        found[code] = Kommune(kommune_nr=code, name=name)
    if not found:
        raise SsbFormatError("no municipalities in the file")
    return [found[k] for k in sorted(found)]


def year_from_name(name: str) -> int | None:
    """The year in a file name such as `ssb-klass-131-2020.csv`, if there is exactly one."""
    years = _YEAR_IN_NAME.findall(name)
    return int(years[0]) if len(years) == 1 else None
