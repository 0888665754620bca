"""The `kpr-mottak` command line: serve, db, parties, tokens (and the tools later issues add)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import migrate
from app.auth import repository as token_repo
from app.auth.tokens import parse_expiry, parse_role
from app.cli.common import err, load_settings, run_db
from app.intake import totals as totals_writer
from app.parties import repository as party_repo
from app.parties.spec import PartySpecError, certificate_spec, make_party, read_parties
from app.query import totals
from app.register import keyrotation
from app.register.keys import ensure_dev_keys, load_protector
from app.statuses import CertificateUsage

app = typer.Typer(
    help="kpr-mottak: KPR's receiving service for IPLOS messages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations (Alembic).", no_args_is_help=True)
parties_app = typer.Typer(help="The sender registry.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(parties_app, name="parties")
app.add_typer(tokens_app, name="tokens")

console = Console()


def default_workers() -> int:
    """The CPU cores this process may run on (its affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (default: the CPU cores this process may use)"),
    ] = None,
) -> None:
    """Serve the HTTP API with uvicorn: N worker processes behind one socket, on SQLite as on
    PostgreSQL (each worker runs its own lifespan; see docs/operations.md and issue 11)."""
    import uvicorn

    from app.exposure import serve_refusal

    settings = load_settings()  # fail fast with a readable message before uvicorn starts
    refusal = serve_refusal(host, settings)
    if refusal is not None:
        err.print(f"[red]{refusal}[/]")
        raise typer.Exit(2)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers if workers is not None else default_workers(),
        proxy_headers=True,
        access_log=False,
        log_level="warning",
        # SIGTERM: stop listening, let messages in progress finish for this long (issue 12).
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the database to REVISION (default: head); at head, rebuild the running totals
    if a migration or another reporting calendar left them stale."""
    settings = load_settings()
    migrate.upgrade(settings.database_url, revision)
    if revision == "head":
        windows = totals.windows_for(settings.reporting_calendar)
        if run_db(lambda session: totals_writer.rebuild_if_stale(session, windows)):
            console.print("running totals rebuilt from the stored messages")
        protector = load_protector(settings)
        if sealed := run_db(lambda session: keyrotation.seal_legacy(session, protector)):
            console.print(f"{sealed} identifiers stored in clear are now encrypted")


@db_app.command("rebuild-totals")
def db_rebuild_totals() -> None:
    """Recompute corrections and the coverage and statistics totals from the stored rows."""
    windows = totals.windows_for(load_settings().reporting_calendar)
    run_db(lambda session: totals_writer.rebuild(session, windows))
    console.print("running totals rebuilt from the stored messages")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()] = "-1") -> None:
    """Migrate the database down to REVISION (default: one step)."""
    migrate.downgrade(load_settings().database_url, revision)


@db_app.command("current")
def db_current() -> None:
    """Print the database's current revision."""
    console.print(migrate.current(load_settings().database_url) or "(empty database)")


@parties_app.command("add")
def parties_add(
    her_id: Annotated[int, typer.Option("--her-id", help="The party's HER-id in AR")],
    name: Annotated[str, typer.Option(help="Organisation name")],
    orgnr: Annotated[str | None, typer.Option(help="Organisation number")] = None,
    kommune: Annotated[list[str] | None, typer.Option(help="Kommunenr it reports for")] = None,
    email: Annotated[list[str] | None, typer.Option(help="Innsendingsansvarlig e-mail")] = None,
    signing_cert: Annotated[Path | None, typer.Option(help="Signing certificate (PEM/DER)")] = None,
    encryption_cert: Annotated[Path | None, typer.Option(help="Encryption cert (PEM/DER)")] = None,
    cpa_id: Annotated[list[str] | None, typer.Option(help="CPA id(s)")] = None,
    plaintext_allowed: Annotated[bool, typer.Option(help="Accept unsigned/plaintext")] = False,
) -> None:
    """Add a party (or merge into an existing one)."""
    from app.parties.spec import CpaSpec

    try:
        certs = []
        if signing_cert:
            certs.append(certificate_spec(signing_cert.read_bytes(), CertificateUsage.SIGNING))
        if encryption_cert:
            certs.append(
                certificate_spec(encryption_cert.read_bytes(), CertificateUsage.ENCRYPTION)
            )
        spec = make_party(
            her_id,
            name,
            orgnr,
            kommune or [],
            email or [],
            tuple(certs),
            tuple(CpaSpec(cpa_id=c) for c in cpa_id or []),
            plaintext_allowed,
        )
    except (PartySpecError, OSError) as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None

    async def work(session: AsyncSession) -> bool:
        return (await party_repo.upsert_party(session, spec))[1]

    created = run_db(work)
    console.print(f"{'added' if created else 'updated'} party HER {spec.her_id} ({spec.name})")


@parties_app.command("import")
def parties_import(
    files: Annotated[list[Path], typer.Argument(help="CSV/JSON AR exports or CPA XML files")],
) -> None:
    """Import parties from AR exports (CSV/JSON) and real CPA XML files."""
    specs = []
    try:
        for f in files:
            specs.extend(read_parties(f.read_bytes(), f.name))
    except (PartySpecError, OSError) as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None

    async def work(session: AsyncSession) -> tuple[int, int]:
        added = updated = 0
        for spec in specs:
            _, created = await party_repo.upsert_party(session, spec)
            added += created
            updated += not created
        return added, updated

    added, updated = run_db(work)
    console.print(f"imported {len(specs)} parties: {added} added, {updated} updated")


@parties_app.command("list")
def parties_list() -> None:
    """List registered parties."""

    async def work(session: AsyncSession) -> list[tuple[str, ...]]:
        return [
            (
                str(p.her_id),
                p.name,
                p.orgnr or "",
                " ".join(k.kommune_nr for k in p.kommuner),
                str(len(p.certificates)),
                " ".join(c.cpa_id for c in p.cpas),
                "yes" if p.plaintext_allowed else "no",
            )
            for p in await party_repo.list_parties(session)
        ]

    table = Table("HER-id", "name", "orgnr", "kommuner", "certs", "CPA ids", "plaintext")
    for row in run_db(work):
        table.add_row(*row)
    console.print(table)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="A unique name (who holds it)")],
    role: Annotated[str, typer.Option(help="operator | register | municipality:<kommunenr>")],
    expires: Annotated[
        str,
        typer.Option(help="a date (2027-12-31: valid through that day) or days (365d)"),
    ] = "365d",
) -> None:
    """Create a token; it is printed once and stored hashed. Every token expires (default:
    in a year); an expired token is refused like a revoked one."""
    try:
        parse_role(role)
        expires_at = parse_expiry(expires, datetime.now(UTC))
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None

    async def work(session: AsyncSession) -> str:
        return (await token_repo.create_token(session, name, role, expires_at=expires_at))[1]

    try:
        plaintext = run_db(work)
    except IntegrityError:
        err.print(f"[red]a token named '{name}' exists already[/]")
        raise typer.Exit(2) from None
    print(plaintext)  # plain stdout, so scripts can capture it


@tokens_app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument()]) -> None:
    """Revoke a token by name."""

    async def work(session: AsyncSession) -> bool:
        return await token_repo.revoke_token(session, name)

    if not run_db(work):
        err.print(f"[red]no token named '{name}'[/]")
        raise typer.Exit(1)
    console.print(f"revoked {name}")


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens (never their secrets)."""

    async def work(session: AsyncSession) -> list[tuple[str, ...]]:
        return [
            (
                t.name,
                t.role + (f":{t.kommune_nr}" if t.kommune_nr else ""),
                t.created_at.isoformat(timespec="seconds"),
                t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else "",
                _expiry(t.expires_at, now),
            )
            for t in await token_repo.list_tokens(session)
        ]

    now = datetime.now(UTC)
    table = Table("name", "role", "created", "revoked", "expires")
    for row in run_db(work):
        table.add_row(*row)
    console.print(table)


def _expiry(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "expired (none set)"
    shown = at.isoformat(timespec="seconds")
    return f"{shown} (expired)" if at <= now else shown


@app.command("dev-pki")
def dev_pki(
    directory: Annotated[Path | None, typer.Option("--dir", help="Default: KPR_PKI_DIR")] = None,
    if_missing: Annotated[bool, typer.Option(help="Keep an existing PKI")] = False,
    her_id: Annotated[int, typer.Option("--her-id", help="Demo municipality HER-id")] = 8000001,
    kommune: Annotated[str, typer.Option(help="Demo municipality kommunenr")] = "0301",
) -> None:
    """A throw-away CA with signing and encryption certificates for KPR and a demo
    municipality, registered as a party. Development only."""
    from app.dev import devsetup
    from app.platform.settings import Env

    settings = load_settings()
    if settings.env is Env.PRODUCTION:
        err.print("[red]dev-pki is for development; KPR_ENV=production refuses it[/]")
        raise typer.Exit(2)
    target = directory or settings.pki_dir
    if if_missing and devsetup.pki_present(target):
        console.print(f"development PKI present in {target}")
    else:
        devsetup.write_pki(target)
        console.print(f"wrote a development PKI to {target}")
    ensure_dev_keys(target / "register")  # the register's keys for identifiers at rest
    spec = devsetup.demo_party(target, her_id=her_id, kommune=kommune)

    async def work(session: AsyncSession) -> bool:
        return await devsetup.register_demo_party(session, spec)

    created = run_db(work)
    console.print(
        f"{'registered' if created else 'updated'} demo party HER {her_id} (kommune {kommune})"
    )


from app.cli.amqp import register as register_amqp  # noqa: E402
from app.cli.api import register as register_api  # noqa: E402
from app.cli.calendar import register as register_calendar  # noqa: E402
from app.cli.edi import register as register_edi  # noqa: E402
from app.cli.feedback import register as register_feedback  # noqa: E402
from app.cli.notify import register as register_notify  # noqa: E402
from app.cli.ops import register as register_ops  # noqa: E402
from app.cli.register import register as register_export  # noqa: E402
from app.cli.register_admin import register as register_register_admin  # noqa: E402
from app.cli.registries import register as register_registries  # noqa: E402
from app.cli.sample import register as register_sample  # noqa: E402
from app.cli.send import register as register_send  # noqa: E402
from app.cli.tools import register as register_tools  # noqa: E402

register_tools(app)
register_sample(app)
register_send(app)
register_notify(app)
register_api(app)
register_ops(app)  # keys check|reload, retention run (issue 12)
register_feedback(app)  # feedback refresh (issue 14)
register_register_admin(app)  # register rotate-key|backfill (issue 19)
register_export(app)  # export (issue 19)
register_calendar(app)  # calendar extend|remove|list|show (issue 21)
register_registries(app, parties_app)  # parties sync, dev registry (issue 23)
register_amqp(app)  # amqp setup|listen (issue 24)
register_edi(app)  # edi listen|poll (issue 25)


def main() -> None:
    app()
