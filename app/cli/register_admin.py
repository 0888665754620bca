"""`kpr-mottak register ...`: the register store's upkeep (key rotation, rebuilding the store
from stored requests: `backfill`, app/intake/backfill.py). The export and the feed's
commands live in app/cli/register.py."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from app.cli.common import load_settings
from app.cli.progress import progress_bar
from app.intake import backfill as rebuild
from app.keyring import KeyringError, load_keyring
from app.platform import sqlite_writer
from app.platform.db import create_engine, session_factory
from app.platform.settings import ReceiverEnvironment, Settings
from app.register import keyrotation
from app.register.keys import RegisterKeyError, load_protector

register_app = typer.Typer(help="The register store (docs/register.md).", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _settings() -> Settings:

    return load_settings()


@register_app.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt every stored identifier under the first key of KPR_REGISTER_KEYS, in
    batches, each committed. Keep the old keys listed until it reports 0 left."""
    settings = _settings()
    try:
        protector = load_protector(settings)
    except RegisterKeyError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None

    async def main() -> tuple[dict[str, int], dict[str, int], int]:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as session:
                before = await keyrotation.count_to_rotate(session, protector)
                with console.status("re-encrypting") as status:

                    def progress(table: str, n: int) -> None:
                        status.update(f"re-encrypting {table}: {n} more")

                    done = await keyrotation.rotate_all(session, protector, progress)
                left = await keyrotation.count_to_rotate(session, protector)
                return before, done, sum(left.values())
        finally:
            await engine.dispose()

    before, done, left = asyncio.run(main())
    for table, n in before.items():
        console.print(
            f"{table}: {done.get(table, 0)} of {n} re-encrypted under key '{protector.current}'"
        )
    console.print(f"left under other keys: {left}")
    if left:
        raise typer.Exit(1)


@register_app.command("backfill")
def backfill(
    environment: Annotated[
        ReceiverEnvironment | None,
        typer.Option(help="Only messages to this environment's addresses (default: all)"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read and report, write nothing")
    ] = False,
) -> None:
    """Rebuild the register rows of accepted messages (AppRec 1 or 3) that have none, from
    their stored requests, decrypted with the keyring; each message in its own committed
    transaction, in received order. Exit 1 when something could not be recovered (the raw
    request removed by retention, not decryptable with today's keys, unreadable)."""
    settings = _settings()
    try:
        keyring = load_keyring(settings)
    except KeyringError as exc:
        err.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    job = rebuild.Job(
        reader=rebuild.Reader.of(settings, keyring.decryption),
        protector=keyring.register,
        dry_run=dry_run,
        writer=sqlite_writer.for_database(settings.database_url),
    )
    results = asyncio.run(_backfill(settings, job, environment.value if environment else None))
    _report(results, dry_run)
    if any(not r.recovery.recovered for r in results):
        raise typer.Exit(1)


async def _backfill(
    settings: Settings, job: rebuild.Job, environment: str | None
) -> list[rebuild.Result]:
    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        async with sessions() as session:
            todo = await rebuild.pending(session, environment)
        results: list[rebuild.Result] = []
        with progress_bar(err) as progress:
            task = progress.add_task("meldinger", total=len(todo))
            for message in todo:
                results.append(await rebuild.recover(sessions, message, job))
                progress.advance(task)
        return results
    finally:
        await engine.dispose()


def _report(results: list[rebuild.Result], dry_run: bool) -> None:
    """Each message that was not recovered, with why; then the counts. Message ids, times
    and counts only: never a fid or anything of the content."""
    for r in results:
        if r.recovery.recovered and not r.detail:
            continue
        # one line per message, never wrapped: an operator greps it for the message id
        console.print(
            f"message {r.message_id} (received {r.received_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"{r.environment}): {r.recovery.value}: {escape(r.detail)}",
            soft_wrap=True,
        )
    messages = Counter(r.recovery for r in results)
    notifications = Counter[rebuild.Recovery]()
    for r in results:
        notifications[r.recovery] += r.notifications
    summary = Table(title="Register backfill" + (" (dry run: nothing written)" if dry_run else ""))
    summary.add_column("result")
    summary.add_column("messages", justify="right")
    summary.add_column("notifications", justify="right")
    for recovery in rebuild.Recovery:
        if messages[recovery]:
            label = recovery.value
            if dry_run and recovery in (rebuild.Recovery.REBUILT, rebuild.Recovery.PARTIAL):
                label = f"{label} (would be)"
            summary.add_row(label, str(messages[recovery]), str(notifications[recovery]))
    summary.add_row("total", str(len(results)), str(sum(notifications.values())))
    console.print(summary)


def register(app: typer.Typer) -> None:
    app.add_typer(register_app, name="register")
