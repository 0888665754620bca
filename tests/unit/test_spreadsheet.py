"""The spreadsheet cell escaping (app/core/spreadsheet.py) and every CSV that uses it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from app.api.feilliste import ErrorRowOut, to_csv
from app.core.spreadsheet import FORMULA_START, cell, sheet

HOSTILE = ("=2+5*10000", "+1", "-1+1", "@SUM(9,9)", "\t=1", "\r=1")


@pytest.mark.parametrize("value", HOSTILE)
def test_text_that_could_start_a_formula_gets_an_apostrophe(value: str) -> None:
    assert cell(value) == "'" + value


def test_numbers_and_plain_text_stay_as_they_are() -> None:
    assert [cell(v) for v in (None, 3, -3, 1.5, True, "B1", "a=b")] == [
        "",
        3,
        -3,
        1.5,
        "True",
        "B1",
        "a=b",
    ]


def test_the_writer_escapes_every_cell_and_starts_with_the_bom() -> None:
    out, writer = sheet()
    writer.writerow(["=1", 2, None, "@x"])
    assert out.getvalue() == "\ufeff'=1;2;;'@x\r\n"


@pytest.mark.parametrize("attack", HOSTILE)
def test_every_text_column_of_the_error_list_is_escaped(attack: str) -> None:
    row = ErrorRowOut(
        message_id=1,
        received_at=datetime(2018, 11, 20, 11, tzinfo=UTC),
        notification_guid=attack,
        lopenr=3,
        bruker_nr=attack,
        fid=attack,
        rule_id=attack,
        apprec_code=attack,
        text=attack,
        detail=attack.strip(),
        corrected=False,
    )
    text = to_csv([row], with_fid=True).decode("utf-8-sig")
    header, cells = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert not [c for c in cells if c.startswith(FORMULA_START)]
    hostile = {h for h, c in zip(header, cells, strict=True) if c == "'" + attack}
    assert hostile >= {
        "NotifikasjonGUID",
        "BrukerNr",
        "Person-ID",
        "Regel",
        "Feilkode",
        "Feiltekst",
    }
