"""`kpr-mottak feedback refresh`: bring the open feedback's aggregates up to date (the server
does the same every KPR_FEEDBACK_REFRESH_SECONDS; this is for cron, after a restore, or with
`--full` after retention has deleted messages)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from app.cli.common import load_settings
from app.feedback.refresh import RefreshReport, refresh_once
from app.platform.db import create_engine, session_factory

feedback_app = typer.Typer(
    help="The open feedback on content and data quality.", no_args_is_help=True
)
console = Console()


@feedback_app.command("refresh")
def refresh_command(
    full: Annotated[
        bool, typer.Option("--full", help="Recompute every year and municipality")
    ] = False,
) -> None:
    """Recompute the figures of every municipality and year touched since the last refresh."""

    settings = load_settings()

    async def main() -> RefreshReport:
        engine = create_engine(
            settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        try:
            return await refresh_once(session_factory(engine), settings, full=full)
        finally:
            await engine.dispose()

    report = asyncio.run(main())
    if report.skipped:
        console.print("another refresh is running; nothing done")
        return
    console.print(
        f"feedback refreshed: {report.touched} municipality-years recomputed, "
        f"generation {report.generation}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(feedback_app, name="feedback")
