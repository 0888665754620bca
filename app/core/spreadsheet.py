"""CSV for people to open in a spreadsheet: every text cell escaped against formula injection.

Excel, LibreOffice and Google Sheets start a formula (or DDE) at a cell beginning with
= + - @, and also after a leading tab or carriage return. Any text cell that could start so
gets a leading apostrophe, which the spreadsheet shows as text and does not display. Every
text column goes through this, whatever it holds (fid, brukerNr, rule id, GUID, names): a
value's column is no promise about its content.

Numbers written as numbers (int, float) are not text and stay as they are, so a spreadsheet
still reads them as numbers. The register's bulk export (`app/register/export.py`) is data
for a machine and is written raw on purpose: an apostrophe there would change the values."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"


def cell(value: object) -> str | int | float:
    """One cell: None empty, numbers as they are, text escaped when it could start a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


class SheetWriter:
    """A `csv.writer` for spreadsheets (`;`, CRLF, as Norwegian Excel expects) whose every
    row is escaped cell by cell."""

    def __init__(self, out: io.StringIO) -> None:
        self._writer = csv.writer(out, delimiter=";", lineterminator="\r\n")

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([cell(v) for v in row])


def sheet() -> tuple[io.StringIO, SheetWriter]:
    """A buffer that starts with the BOM (so Excel reads UTF-8) and its writer."""
    out = io.StringIO()
    out.write(BOM)
    return out, SheetWriter(out)
