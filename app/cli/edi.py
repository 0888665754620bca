"""`kpr-mottak edi listen|poll` and `send --smtp`: the EDI channel, ebXML over SMTP (issue 25,
docs/operations.md "EDI")."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import typer
from cryptography import x509
from rich.console import Console
from rich.markup import escape

from app.cli.common import load_settings
from app.edi.mail import OutgoingMail, ebxml_mail
from app.platform.settings import Settings
from app.security.keys import KeyPair
from app.state import AppState

edi_app = typer.Typer(
    help="IPLOS over EDI: ebXML in mails (NHN's meldingskontoer).", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)


@contextlib.asynccontextmanager
async def _running(settings: Settings) -> AsyncIterator[AppState]:
    """What the EDI task needs of the service, without the HTTP server."""
    from app.keyring import load_keyring
    from app.platform.db import create_engine, session_factory
    from app.platform.logs import configure_logging
    from app.platform.metrics import Metrics

    if not settings.edi_mailboxes and not settings.edi_listen:
        err.print("[red]Neither KPR_EDI_MAILBOXES nor KPR_EDI_LISTEN is set: no mail to read[/]")
        raise typer.Exit(2)
    configure_logging(settings.log_format)
    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        yield AppState(settings, engine, session_factory(engine), Metrics(), load_keyring(settings))
    finally:
        await engine.dispose()


@edi_app.command("listen")
def listen() -> None:
    """Poll the mailboxes of KPR_EDI_MAILBOXES, take the mail KPR_EDI_LISTEN's MTA hands over,
    and send the reply mails until SIGINT/SIGTERM, without the HTTP service (which runs the
    same tasks itself when they are configured)."""
    from app.edi.listener import start_listeners
    from app.edi.runner import EdiRunner

    async def run() -> None:
        async with _running(load_settings()) as state:
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    asyncio.get_running_loop().add_signal_handler(sig, stop.set)
            listeners = await start_listeners(state)
            try:
                await EdiRunner(state).run(stop)
            finally:
                await listeners.close()

    asyncio.run(run())


@edi_app.command("poll")
def poll() -> None:
    """One round: every mailbox read once, the due reply mails sent."""
    from app.edi.runner import EdiRunner

    async def run() -> None:
        async with _running(load_settings()) as state:
            await EdiRunner(state).round()

    asyncio.run(run())


def register(app: typer.Typer) -> None:
    """Add the `edi` group to the `kpr-mottak` app."""
    app.add_typer(edi_app, name="edi")


def send_smtp(
    file: Path,
    url: str,
    to_address: str,
    hers: tuple[str, str, str],
    signing: KeyPair | None,
    encrypt_to: x509.Certificate | None,
    timeout: float,
) -> int:
    """`kpr-mottak send --smtp ADDRESS`: the MsgHead signed and encrypted as an EPJ's MSH sends
    it (`hers`: from and to HER-id, CPA id), in a mail to KPR's EDI address through the relay
    at `url`; the answer comes back by mail to the sender's address in its CPA. 0 mailed, 2
    not."""
    import aiosmtplib

    from app.platform.mailboxes import parse_relay

    try:
        relay = parse_relay(url)
        mail, message_id = _edi_mail(file.read_bytes(), to_address, hers, signing, encrypt_to)
    except (OSError, ValueError) as exc:
        err.print(f"[red]could not build the mail: {escape(str(exc))}[/]")
        return 2
    try:
        asyncio.run(
            aiosmtplib.send(
                mail.data,
                sender=mail.sender,
                recipients=[mail.recipient],
                hostname=relay.host,
                port=relay.port,
                use_tls=relay.tls,
                start_tls=relay.starttls,
                timeout=timeout,
            )
        )
    except (OSError, aiosmtplib.SMTPException) as exc:
        err.print(f"[red]could not mail through {escape(url)}: {escape(str(exc))}[/]")
        return 2
    console.print(
        f"mailed MessageId {escape(message_id)} to {escape(to_address)}; the Acknowledgment "
        "and the AppRec come by mail to the address in your CPA"
    )
    return 0


def _edi_mail(
    msghead: bytes,
    to_address: str,
    hers: tuple[str, str, str],
    signing: KeyPair | None,
    encrypt_to: x509.Certificate | None,
) -> tuple[OutgoingMail, str]:
    from app.dev.client import SendOptions, build_epj_message

    if "@" not in to_address:
        raise ValueError("--smtp needs KPR's EDI address")
    from_her, to_her, cpa_id = hers
    options = SendOptions(from_her=from_her, to_her=to_her, cpa_id=cpa_id)
    built = build_epj_message(msghead, options, signing=signing, encrypt_to=encrypt_to)
    mail = ebxml_mail(
        built.body,
        built.content_type,
        sender=f"her-{from_her}@edi.localhost",  # the mail's From decides nothing at KPR
        recipient=to_address,
        message_id=f"{uuid.uuid4()}@kpr-mottak-send",
        date=datetime.now(UTC),
    )
    return mail, built.message_id
