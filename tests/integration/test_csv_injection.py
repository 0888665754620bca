"""Issue 20, hole 5: every text cell of the CSVs people open in a spreadsheet is escaped
against formula injection, whatever column it is in (fid, GUID and rule id included)."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.spreadsheet import FORMULA_START
from tests.integration.seed import Fault, add_message, auth, token

Sessions = async_sessionmaker[AsyncSession]
URL = "/api/v1/kommuner/0301/feilliste"
# every character a spreadsheet starts a formula (or DDE) at
HOSTILE = ("=2+5*10000", "+1+1", "-1+1", "@SUM(9,9)", "\t=1+1", "\r=1+1")


@pytest.mark.parametrize("attack", HOSTILE)
async def test_no_cell_of_the_error_list_starts_a_formula(
    client: httpx.AsyncClient, sessions: Sessions, attack: str
) -> None:
    oslo = auth(await token(sessions, "oslo", "municipality:0301"))
    await add_message(
        sessions,
        status="OK_FEIL_I_DELMELDING",
        apprec_status="3",
        faults=[
            Fault(guid=attack, bruker_nr=attack, fid=attack, rule_id=attack, apprec_code=attack)
        ],
    )
    r = await client.get(
        URL, headers=oslo, params={"year": 2018, "environment": "pilot", "format": "csv"}
    )
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    header, row = rows[0], rows[1]
    assert "Person-ID" in header  # the fid column is there, and escaped too
    escaped = {h: c for h, c in zip(header, row, strict=True) if c == "'" + attack}
    assert set(escaped) == {
        "NotifikasjonGUID",
        "BrukerNr",
        "Person-ID",
        "Regel",
        "Feilkode",
        "Feiltekst",  # an unknown rule's text is its id
    }
    assert not [c for c in row if c.startswith(FORMULA_START)]
