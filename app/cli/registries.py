"""`kpr-mottak parties sync` (refresh parties from NHN's registries and show what changed)
and `kpr-mottak dev registry` (the fake registries serving the dev PKI's parties), issue 23."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.common import err, load_settings
from app.keyring import load_keyring
from app.models import Party, RegistryEntry
from app.outbound import OutboundClient
from app.platform.db import create_engine, session_factory
from app.platform.settings import Settings
from app.registries import lookup
from app.registries.models import RegistryUnavailable

dev_app = typer.Typer(help="Development helpers.", no_args_is_help=True)
console = Console()


@dataclass(frozen=True, slots=True)
class SyncRow:
    her_id: int
    name: str
    change: str  # added | updated | unchanged | kept | unknown | refused | unavailable
    detail: str


async def sync_parties(
    session: AsyncSession,
    regs: lookup.Registries,
    her_ids: list[int],
    our_her_id: int | None,
    *,
    adopt: bool,
) -> list[SyncRow]:
    """Refresh each HER-id from the registries (parties an operator added are kept unless
    `adopt`); one row per HER-id saying what changed."""
    rows = []
    for her in her_ids:
        try:
            stored = await regs.refresh(session, her, our_her_id, adopt=adopt)
        except RegistryUnavailable as exc:
            rows.append(SyncRow(her, "", "unavailable", str(exc)[:120]))
            continue
        entry = await session.get(RegistryEntry, her)
        detail = (entry.problem if entry is not None else None) or ""
        if stored.change == "kept":
            detail = f"source {stored.party.source if stored.party else '?'}: --adopt to take it"
        name = stored.party.name if stored.party is not None else ""
        rows.append(SyncRow(her, name, stored.change, detail))
    await session.commit()
    return rows


async def _her_ids(session: AsyncSession) -> list[int]:
    parties = set(await session.scalars(select(Party.her_id)))
    known = set(await session.scalars(select(RegistryEntry.her_id)))
    return sorted(parties | known)


async def _run_sync(settings: Settings, her_id: int | None, adopt: bool) -> list[SyncRow]:
    client = OutboundClient(
        allow_private=settings.outbound_private_allowed, ca_file=settings.outbound_ca_file
    )
    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        anchors = load_keyring(settings).trust_anchors
        regs = lookup.build(settings, client, anchors)
        if regs is None:
            raise typer.BadParameter("KPR_AR_URL is not set: the registries are not configured")
        async with session_factory(engine)() as session:
            her_ids = [her_id] if her_id is not None else await _her_ids(session)
            ours = next(iter(settings.receivers), None)
            return await sync_parties(session, regs, her_ids, ours, adopt=adopt)
    finally:
        await client.aclose()
        await engine.dispose()


def parties_sync(
    her_id: Annotated[
        int | None, typer.Option("--her-id", help="One HER-id (default: every party)", min=1)
    ] = None,
    adopt: Annotated[
        bool,
        typer.Option("--adopt", help="Also overwrite parties added by hand or import"),
    ] = False,
) -> None:
    """Refresh parties from NHN's registries (KPR_AR_URL, KPR_CPPA_URL) and show what
    changed."""
    settings = load_settings()
    try:
        rows = asyncio.run(_run_sync(settings, her_id, adopt))
    except typer.BadParameter as exc:
        err.print(f"[bold red]{exc}[/]")
        raise typer.Exit(2) from None
    table = Table("HER-id", "name", "change", "detail", title="parties sync")
    for row in rows:
        table.add_row(str(row.her_id), row.name, row.change, row.detail)
    console.print(table)
    if any(r.change == "unavailable" for r in rows):
        raise typer.Exit(1)


@dev_app.command("registry")
def dev_registry(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8089,
) -> None:
    """Serve fake NHN registries (AR SOAP and REST, HelseID token, CPPA) holding the dev
    PKI's demo municipality, for `make run` with KPR_AR_URL=http://HOST:PORT/ar."""
    import uvicorn

    from app.registries.fake import create_fake_app, dev_registry_parties

    settings = load_settings()
    fake = dev_registry_parties(settings.pki_dir)
    base = f"http://{host}:{port}"
    console.print(
        f"fake registries: KPR_AR_URL={base}/ar (KPR_AR_KIND=soap), "
        f"KPR_CPPA_URL={base}/cppa; REST AR {base}/ar-rest, token {base}/helseid/token"
    )
    uvicorn.run(create_fake_app(fake), host=host, port=port, log_level="info")


def register(app: typer.Typer, parties_app: typer.Typer) -> None:
    parties_app.command("sync")(parties_sync)
    app.add_typer(dev_app, name="dev")
