"""`kpr-mottak calendar extend|remove|list|show`: the deadlines KPR granted single
municipalities (15 February 2019 for some in the pilot year). Stored in the database
(migration 0022), read by the intake's timeliness, the coverage and the feedback. Operator
only: the command line on the server; every change is written to the access log as the local
user."""

from __future__ import annotations

import datetime
import re
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.common import load_settings, run_db
from app.content.calendar import DeadlineExtension, ReportingYear, extended
from app.deadlines import repository as deadline_repo
from app.kommuner.repository import kommuner_of
from app.kommuner.years import changes_from
from app.query.access_log import cli_access, record_access

calendar_app = typer.Typer(
    help="The reporting calendar and the deadlines granted single municipalities.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)
_KOMMUNE = re.compile(r"[0-9]{4}")


def _kommune(value: str) -> str:
    if _KOMMUNE.fullmatch(value) is None:
        err.print(f"[red]--kommune must be four digits (0-9), not {value!r}[/]")
        raise typer.Exit(2)
    return value


def _year(value: int) -> int:
    if not 2000 <= value <= 2999:
        err.print(f"[red]--year must be a reporting year (2000-2999), not {value}[/]")
        raise typer.Exit(2)
    return value


def _became(kommune_nr: str) -> str:
    """What SSB's change lists say became of a number, for the refusal's text."""
    changes = changes_from(kommune_nr)
    if not changes:
        return ""
    return " (now " + ", ".join(f"{c.new} {c.new_name}" for c in changes) + ")"


def _entry(year: int) -> ReportingYear:
    from app.query.reporting import year_entry

    return year_entry(load_settings(), year)


def _logged(session: AsyncSession, action: str, kommune_nr: str, year: int) -> None:
    record_access(session, cli_access(action, f"cli calendar {kommune_nr} {year}", kommune_nr))


@calendar_app.command("extend")
def extend_command(
    kommune: Annotated[str, typer.Option("--kommune", help="Kommunenummer (4 digits)")],
    year: Annotated[int, typer.Option("--year", help="The reporting year")],
    until: Annotated[
        datetime.datetime,
        typer.Option("--until", formats=["%Y-%m-%d"], help="The granted deadline (YYYY-MM-DD)"),
    ],
) -> None:
    """Give one municipality a later deadline for one reporting year (set again to move it).
    The correction deadline is never before it."""

    kommune_nr, reporting_year, day = _kommune(kommune), _year(year), until.date()
    entry = _entry(reporting_year)
    if day <= entry.deadline:
        err.print(
            f"[red]--until {day.isoformat()} is not after the deadline for {reporting_year} "
            f"({entry.deadline.isoformat()}): nothing to extend[/]"
        )
        raise typer.Exit(2)

    async def work(session: AsyncSession) -> DeadlineExtension | None:
        # a mistyped number would be granted silently and never match a message
        known = await kommuner_of(session, reporting_year)
        if kommune_nr not in {k.kommune_nr for k in known}:
            return None
        granted = await deadline_repo.extend(session, kommune_nr, reporting_year, day)
        _logged(session, "calendar.extend", kommune_nr, reporting_year)
        return granted

    granted = run_db(work)
    if granted is None:
        err.print(
            f"[red]--kommune {kommune_nr} is not a municipality in {reporting_year}'s list "
            f"(SSB){_became(kommune_nr)}: nothing to extend[/]"
        )
        raise typer.Exit(2)
    shown = extended(entry, kommune_nr, (granted,))
    console.print(
        f"kommune {kommune_nr}, {reporting_year}: deadline {shown.deadline.isoformat()}, "
        f"correction deadline {shown.correction_deadline.isoformat()}"
    )


@calendar_app.command("remove")
def remove_command(
    kommune: Annotated[str, typer.Option("--kommune", help="Kommunenummer (4 digits)")],
    year: Annotated[int, typer.Option("--year", help="The reporting year")],
) -> None:
    """Take a municipality's extension back: the ordinary deadline applies again."""

    kommune_nr, reporting_year = _kommune(kommune), _year(year)

    async def work(session: AsyncSession) -> bool:
        removed = await deadline_repo.remove(session, kommune_nr, reporting_year)
        if removed:
            _logged(session, "calendar.remove", kommune_nr, reporting_year)
        return removed

    if not run_db(work):
        err.print(f"[red]kommune {kommune_nr} has no extension for {reporting_year}[/]")
        raise typer.Exit(1)
    console.print(f"kommune {kommune_nr}, {reporting_year}: the ordinary deadline applies")


@calendar_app.command("list")
def list_command(
    year: Annotated[int | None, typer.Option("--year", help="Only this reporting year")] = None,
) -> None:
    """Every extension granted (or those of one year)."""

    async def work(session: AsyncSession) -> tuple[DeadlineExtension, ...]:
        return await deadline_repo.extensions(
            session, year=_year(year) if year is not None else None
        )

    table = Table("year", "kommune", "deadline", "ordinary deadline", "correction deadline")
    for e in run_db(work):
        entry = _entry(e.year)
        shown = extended(entry, e.kommune_nr, (e,))
        table.add_row(
            str(e.year),
            e.kommune_nr,
            shown.deadline.isoformat(),
            entry.deadline.isoformat(),
            shown.correction_deadline.isoformat(),
        )
    console.print(table)


@calendar_app.command("show")
def show_command(
    year: Annotated[int, typer.Option("--year", help="The reporting year")],
    kommune: Annotated[
        str | None, typer.Option("--kommune", help="As it applies to this municipality")
    ] = None,
) -> None:
    """A reporting year's dates (the configured calendar, else the standing 15 January, 15
    March and 21 March), as they apply to one municipality with `--kommune`, and the
    extensions granted for the year."""

    reporting_year = _year(year)
    kommune_nr = _kommune(kommune) if kommune is not None else None

    async def work(session: AsyncSession) -> tuple[DeadlineExtension, ...]:
        return await deadline_repo.extensions(session, year=reporting_year)

    granted = run_db(work)
    entry = _entry(reporting_year)
    applies = extended(entry, kommune_nr, granted) if kommune_nr is not None else entry
    if applies.pilot_from and applies.pilot_to:
        console.print(f"pilot window: {applies.pilot_from} – {applies.pilot_to}")
    who = f" (kommune {kommune_nr})" if kommune_nr is not None else ""
    console.print(f"deadline{who}: {applies.deadline.isoformat()}")
    console.print(f"KOSTRA published: {applies.kostra_date.isoformat()}")
    console.print(f"correction deadline{who}: {applies.correction_deadline.isoformat()}")
    console.print(f"extensions granted for {reporting_year}: {len(granted)}")
    for e in granted:
        console.print(f"  {e.kommune_nr}: {e.until.isoformat()}")


def register(app: typer.Typer) -> None:
    app.add_typer(calendar_app, name="calendar")
