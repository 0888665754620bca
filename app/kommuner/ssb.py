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


@dataclass(frozen=True, slots=True, kw_only=True)
class KommuneChange:
    """One line of SSB's change list between two versions of Klass 131: `old` became `new`
    (`renumbered`: the same municipality under a new number; `split`: one of the parts)."""

    old: str
    old_name: str
    new: str
    new_name: str
    kind: str  # renumbered | split | merged


CHANGE_COLUMNS = ("oldCode", "oldName", "newCode", "newName", "kind")
CHANGE_KINDS = frozenset({"renumbered", "split", "merged"})


def parse_changes(data: bytes) -> list[KommuneChange]:
    """SSB's change list (`;`-separated: oldCode, oldName, newCode, newName, kind), in file
    order. Raises SsbFormatError."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SsbFormatError("not UTF-8 text") from exc
    reader = csv.DictReader(io.StringIO(text), delimiter=";")
    missing = [c for c in CHANGE_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise SsbFormatError(f"missing columns {missing}: expected an SSB change list (;)")
    out: list[KommuneChange] = []
    for line, row in enumerate(reader, start=2):
        old, new = (row.get("oldCode") or "").strip(), (row.get("newCode") or "").strip()
        kind = (row.get("kind") or "").strip()
        if not (_CODE.fullmatch(old) and _CODE.fullmatch(new)):
            raise SsbFormatError(f"line {line}: '{old}' -> '{new}' are not kommunenumre")
        if kind not in CHANGE_KINDS:
            raise SsbFormatError(f"line {line}: unknown kind '{kind}'")
        out.append(
            KommuneChange(
                old=old,
                old_name=" ".join((row.get("oldName") or "").split()),
                new=new,
                new_name=" ".join((row.get("newName") or "").split()),
                kind=kind,
            )
        )
    if not out:
        raise SsbFormatError("no changes in the file")
    return out


def years_of_changes(name: str) -> tuple[int, int] | None:
    """The two years of a change list's name, such as `ssb-changes-2020-2024.csv`."""
    years = _YEAR_IN_NAME.findall(name)
    if "changes" not in name or len(years) != 2:
        return None
    return int(years[0]), int(years[1])


def year_from_name(name: str) -> int | None:
    """The year in a file name such as `ssb-klass-131-2020.csv`, if there is exactly one."""
    years = _YEAR_IN_NAME.findall(name)
    return int(years[0]) if len(years) == 1 else None
