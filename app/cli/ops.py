"""Operations commands: `kpr-mottak keys check|reload` and `kpr-mottak retention run`."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from app.cli.common import load_settings
from app.keyring import KeyringError, load_keyring

keys_app = typer.Typer(help="Our keys and trust anchors at run time.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _check() -> None:

    try:
        keyring = load_keyring(load_settings())
    except (KeyringError, OSError, ValueError) as exc:
        err.print(f"[red]the keys cannot be loaded: {exc}[/]")
        raise typer.Exit(1) from None
    console.print(
        f"signing key: {'yes' if keyring.signing else 'no'}, "
        f"decryption keys: {len(keyring.decryption)}, trust anchors: "
        f"{len(keyring.trust_anchors)}, CRL files: {len(keyring.crls)}"
    )


@keys_app.command("check")
def check() -> None:
    """Load the configured keys, certificates and trust anchors as the server would."""
    _check()


@keys_app.command("reload")
def reload(
    pid: Annotated[
        int | None, typer.Option("--pid", help="The server's pid (default: KPR_PID_FILE)")
    ] = None,
) -> None:
    """Make a running server load its keys, certificates and trust anchors again (SIGHUP),
    after checking here that they load. Messages in progress finish with the old keys."""

    _check()
    if pid is None:
        pid_file: Path | None = load_settings().pid_file
        if pid_file is None:
            err.print("[red]give --pid, or set KPR_PID_FILE to the file the server writes[/]")
            raise typer.Exit(2)
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError) as exc:
            err.print(f"[red]cannot read the server's pid from {pid_file}: {exc}[/]")
            raise typer.Exit(1) from None
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        err.print(f"[red]no process {pid}: is the server running?[/]")
        raise typer.Exit(1) from None
    console.print(f"asked process {pid} to reload its keys (see its log: keys.reloaded)")


retention_app = typer.Typer(
    help="Remove raw bodies and personal data when due (KPR_RETENTION_*).", no_args_is_help=True
)


@retention_app.command("run")
def retention_run() -> None:
    """Apply KPR_RETENTION_* now: raw bodies, person identifiers in findings and the IPLOS
    history older than configured are removed; each removal is written to the access log."""
    import asyncio
    from datetime import UTC, datetime

    from app.platform.db import create_engine, session_factory
    from app.retention.policy import RetentionReport, apply_retention

    settings = load_settings()

    async def main() -> RetentionReport:
        engine = create_engine(
            settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        try:
            return await apply_retention(session_factory(engine), settings, datetime.now(UTC))
        finally:
            await engine.dispose()

    report = asyncio.run(main())
    for removed in report.removed:
        extra = f" and {removed.extra} brukerNr-fid pairs" if removed.extra else ""
        console.print(
            f"{removed.category}: {len(removed.message_ids)} messages{extra} "
            f"(received before {removed.before:%Y-%m-%d})"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(retention_app, name="retention")
