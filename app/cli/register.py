"""`kpr-mottak export`: the register's tables for one environment and reporting year, as
Parquet or CSV files (docs/register-feed.md). Identifiers only with `--with-fid`, which is
written to the access log as the local user before the first one is."""

from __future__ import annotations

import asyncio
import getpass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from app.api.messages import Environment
from app.cli.common import load_settings
from app.cli.progress import progress_bar
from app.content.calendar import OSLO
from app.platform.db import create_engine, session_factory
from app.platform.settings import Settings
from app.query.reporting import received_window, year_entry
from app.register.export import (
    TABLES,
    ExportFormat,
    count_rows,
    export_tables,
    record_export_access,
    scope_of,
)
from app.register.keys import RegisterKeyError, load_protector
from app.register.protect import Protector

console = Console()
err = Console(stderr=True)
COUNTED = ("melding", "kontaktperson", "melding_kommune", "notifikasjon")


def export(
    year: Annotated[
        int, typer.Option(min=2000, max=2100, help="The reporting year, as coverage counts it")
    ],
    out: Annotated[Path, typer.Option(help="Directory for the files (created if missing)")],
    environment: Annotated[Environment, typer.Option()] = Environment.PRODUCTION,
    fmt: Annotated[ExportFormat, typer.Option("--format")] = ExportFormat.PARQUET,
    with_fid: Annotated[
        bool, typer.Option("--with-fid", help="Include the fids, opened (access-logged)")
    ] = False,
) -> None:
    """Write melding, kontaktperson, melding_kommune, notifikasjon, hendelse and episode of
    the meldinger received in the reporting year's window to OUT/<table>.parquet (or .csv).
    Without --with-fid the fid column is left out (fid_hmac stays, for joins)."""

    settings = load_settings()
    protector: Protector | None = None
    if with_fid:
        try:
            protector = load_protector(settings)
        except RegisterKeyError as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
    window = received_window(year_entry(settings, year))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        err.print(f"[red]cannot create {out}: {exc}[/]")
        raise typer.Exit(2) from None
    resource = f"cli export --year {year} --environment {environment.value} --with-fid {out}"
    written = asyncio.run(
        _export(settings, environment.value, window, out, fmt, protector, resource)
    )
    start, end = (t.astimezone(OSLO).strftime("%Y-%m-%d %H:%M") for t in window)
    console.print(
        f"{environment.value}, reporting year {year}: meldinger received {start} to {end} "
        "(Oslo time)"
    )
    console.print(f"written to {out}:")
    for name, rows in written.items():
        console.print(f"  {name}.{fmt.value}: {rows:,} rows")


async def _export(
    settings: Settings,
    environment: str,
    window: tuple[datetime, datetime],
    out: Path,
    fmt: ExportFormat,
    protector: Protector | None,
    resource: str,
) -> dict[str, int]:
    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        async with sessions() as session:
            scope = await scope_of(session, environment, window)
            # the tables the progress bar knows the size of beforehand: counting the events
            # and episodes would cost as much as reading them (a join over the year)
            totals = {
                name: await count_rows(session, name, scope) if name in COUNTED else None
                for name in TABLES
            }
            if protector is not None:
                # committed before the first identifier is written: a read that failed half
                # way is logged too, one that wrote identifiers is never missing
                record_export_access(session, actor=f"cli:{getpass.getuser()}", resource=resource)
            await session.commit()
        written = dict.fromkeys(TABLES, 0)
        with progress_bar(err, description="{task.description:<16}") as progress:
            tasks = {name: progress.add_task(name, total=totals[name]) for name in TABLES}

            def advance(name: str, rows: int) -> None:
                written[name] += rows
                progress.advance(tasks[name], rows)

            async with sessions() as session:
                await export_tables(session, scope, out, fmt, protector=protector, progress=advance)
        return written
    finally:
        await engine.dispose()


def register(app: typer.Typer) -> None:
    """Add `export` to the `kpr-mottak` app."""
    app.command("export")(export)
