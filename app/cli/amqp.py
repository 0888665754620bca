"""`kpr-mottak amqp setup|listen`: the AMQP 1.0 transport through NHN's Tjenestebuss
(issue 24, docs/amqp.md)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from app.cli.common import load_settings
from app.platform.settings import Settings

amqp_app = typer.Typer(help="IPLOS over AMQP 1.0 (NHN's Tjenestebuss).", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _url(settings: Settings) -> str:
    if not settings.amqp_url:
        err.print("[red]KPR_AMQP_URL is not set: there is no broker[/]")
        raise typer.Exit(2)
    return settings.amqp_url


@amqp_app.command("setup")
def setup(
    her_id: Annotated[
        list[int] | None, typer.Option("--her-id", help="Also declare this HER-id's queues")
    ] = None,
) -> None:
    """Declare the queues of KPR_AMQP_QUEUES (and --her-id) in RabbitMQ: `{her}_async`,
    `_sync` (quorum, delivery limit, dead letters to `_dl`), `_error`, `_dl`, `_syncreply`."""
    from app.amqp.setup import declare

    settings = load_settings()
    names = declare(_url(settings), [*settings.amqp_queues, *(her_id or [])])
    console.print(f"declared {len(names)} queues: {', '.join(names)}")


@amqp_app.command("listen")
def listen() -> None:
    """Receive from the queues of KPR_AMQP_QUEUES until SIGINT/SIGTERM, without the HTTP
    service (which starts the same receiver itself when KPR_AMQP_URL is set)."""
    settings = load_settings()
    _url(settings)
    asyncio.run(_listen(settings))


async def _listen(settings: Settings) -> None:
    from app.amqp.service import runner_for
    from app.keyring import load_keyring
    from app.platform.db import create_engine, session_factory
    from app.platform.logs import configure_logging
    from app.platform.metrics import Metrics
    from app.state import AppState

    configure_logging(settings.log_format)
    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        metrics=Metrics(),
        keyring=load_keyring(settings),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await runner_for(state).run(stop)
    finally:
        await engine.dispose()


def register(app: typer.Typer) -> None:
    """Add the `amqp` group to the `kpr-mottak` app."""
    app.add_typer(amqp_app, name="amqp")


def send_amqp(
    file: Path, url: str, from_her: str, to_her: str, pki_dir: Path, timeout: float
) -> int:
    """`kpr-mottak send --amqp`: 0 an AppRec came on `{from}_async`, 1 an error on
    `{from}_error`, 2 nothing came (or nothing could be sent)."""
    from app.amqp import devsender

    try:
        body = devsender.protect(file.read_bytes(), pki_dir)
        sent = devsender.message(body, from_her=from_her, to_her=to_her, subject="KPR_IPLOS")
        answer = devsender.send_and_wait(url, sent, from_her=from_her, to_her=to_her, wait=timeout)
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        err.print(f"[red]could not send over AMQP: {escape(str(exc))}[/]")
        return 2
    except Exception as exc:  # proton's connection errors
        err.print(f"[red]could not send to {escape(url)}: {type(exc).__name__}: {exc}[/]")
        return 2
    if answer is None:
        err.print(f"[red]no answer on {from_her}_async or {from_her}_error within {timeout} s[/]")
        return 2
    console.print(f"sent {sent.id!r} to {to_her}_async; answer on {answer.queue}")
    for name in ("errorCondition", "errorDescription"):
        if name in answer.properties:
            console.print(f"  {name}: {escape(answer.properties[name])}")
    console.print(f"  subject: {answer.subject}, {len(answer.body)} bytes")
    return 1 if answer.queue.endswith("_error") else 0
