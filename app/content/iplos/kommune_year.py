"""IPL-KOMMUNE-YEAR: a message's municipality numbers against SSB's list of each year its
notifications report for (docs/rules.md, Decisions). From 1 January 2024 every municipality of
the former Viken, Vestfold og Telemark and Troms og Finnmark has a new number, and Ålesund 1507
was split: an EPJ that still sends the old number (or the new one for an earlier year) is told
the number in force. A warning, never a rejection (the Annotations' handling is 9)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence

from app.content.calendar import reporting_year
from app.content.iplos import rules as R
from app.content.model import ContentContext
from app.core.findings import Finding, Subject
from app.kommuner.years import Change, KommuneYears, changes_from, changes_to

_KOMMUNENR = re.compile(r"[0-9]{4}")


def kommune_year_findings(
    kommuner: Sequence[str],
    event_dates: Iterable[Iterable[datetime.date | None]],
    ctx: ContentContext,
) -> list[Finding]:
    """One warning per municipality number and reporting year whose list lacks it.
    `event_dates`: each notification's event dates (its reporting year is its latest
    event's). Malformed and not allowed numbers are other rules' findings."""
    years = sorted(
        {y for dates in event_dates if (y := reporting_year(dates, ctx.now)) is not None}
    )
    if not years:
        return []
    lists = ctx.kommune_years or KommuneYears()
    out: list[Finding] = []
    for i, kommune_nr in enumerate(kommuner, start=1):
        if _KOMMUNENR.fullmatch(kommune_nr) is None:
            continue
        if ctx.allowed_kommuner is not None and kommune_nr not in ctx.allowed_kommuner:
            continue
        for year in years:
            if kommune_nr in lists.numbers(year):
                continue
            out.append(
                Finding(
                    R.KOMMUNE_YEAR,
                    f"/Melding/Kommune[{i}]/@kommuneNr",
                    _detail(kommune_nr, year, lists),
                    Subject(kommune_nr=kommune_nr),
                )
            )
    return out


def _detail(kommune_nr: str, year: int, lists: KommuneYears) -> str:
    head = f"Kommunenummer {kommune_nr} finnes ikke i SSBs kommuneliste for {year}"
    later = [c for c in changes_from(kommune_nr) if c.valid_from.year <= year]
    if later:
        return f"{head}. {_successor(later)}"
    earlier = [
        c
        for c in changes_to(kommune_nr)
        if c.valid_from.year > year and c.old in lists.numbers(year)
    ]
    if earlier:
        return f"{head}. {_predecessor(kommune_nr, earlier)}"
    return f"{head}."


def _successor(changes: list[Change]) -> str:
    first = changes[0]
    since = f"{first.valid_from:%d.%m.%Y}"
    if len(changes) == 1 and first.kind == "renumbered":
        return (
            f"Fra {since} har {first.new_name} kommunenummer {first.new}: bruk {first.new} for "
            "hendelser fra og med det året."
        )
    parts = " og ".join(f"{c.new} {c.new_name}" for c in changes)
    return (
        f"{first.old_name} ({first.old}) ble delt {since} i {parts}, så nummeret har ingen "
        "enkelt etterfølger: bruk nummeret til den kommunen hendelsene gjelder."
    )


def _predecessor(kommune_nr: str, changes: list[Change]) -> str:
    first = changes[0]
    since = f"{first.valid_from:%d.%m.%Y}"
    if first.kind == "renumbered":
        return (
            f"Nummeret gjelder fra {since}; før det hadde {first.old_name} kommunenummer "
            f"{first.old}."
        )
    return f"Nummeret gjelder fra {since}; før det var kommunen en del av {first.old} " + (
        f"{first.old_name}."
    )
