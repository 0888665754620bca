"""`kpr-mottak notify run`: the notification outbox sender as its own process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer
from rich.console import Console

from app.cli.common import load_settings
from app.notify.sender import DEFAULT_BATCH, DEFAULT_INTERVAL, SendReport, SmtpConfig, run_loop
from app.platform.db import create_engine, session_factory
from app.platform.logs import configure_logging

notify_app = typer.Typer(
    help="The notification emails to innsendingsansvarlig.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)


@notify_app.command("run")
def run(
    once: Annotated[bool, typer.Option("--once", help="Send what is due now, then exit")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between rounds when idle")
    ] = DEFAULT_INTERVAL,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Rows claimed per round")] = (
        DEFAULT_BATCH
    ),
) -> None:
    """Send the queued notification emails (KPR_SMTP_*), retrying failures with backoff.
    Several of these may run against one PostgreSQL database; each email is sent by one."""

    settings = load_settings()
    if not settings.smtp_host:
        err.print("[red]KPR_SMTP_HOST is not set: there is no SMTP server to send to[/]")
        raise typer.Exit(2)
    configure_logging(settings.log_format)
    config = SmtpConfig.from_settings(settings)

    async def main() -> SendReport:
        engine = create_engine(
            settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        try:
            return await run_loop(
                session_factory(engine),
                config,
                interval=interval,
                batch=batch,
                stop=stop,
                once=once,
            )
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
            await engine.dispose()

    report = asyncio.run(main())
    console.print(
        f"notifications: {report.sent} sent, {report.retrying} to retry, "
        f"{report.failed} failed for good"
    )


def register(app: typer.Typer) -> None:
    """Add the `notify` group to the `kpr-mottak` app."""
    app.add_typer(notify_app, name="notify")
