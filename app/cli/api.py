"""`kpr-mottak` commands for the operator on the box: messages, feilliste, coverage, kommuner
import, notify remind. They run the API's queries directly on the database; a read of
personal data from the command line (feilliste) is written to the access log as the local
user."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.coverage import Coverage, build_coverage
from app.api.feilliste import Feilliste, Which, read_feilliste, to_csv
from app.api.messages import Environment, MessageStatus
from app.cli.common import load_settings, run_db
from app.kommuner.repository import replace_year
from app.kommuner.ssb import SsbFormatError, parse_klass_131, year_from_name
from app.models import utcnow
from app.notify.remind import RemindReport, queue_reminders
from app.platform.settings import Settings
from app.query import messages as message_repo
from app.query.access_log import cli_access, record_access
from app.query.reporting import default_year
from app.register.keys import load_protector

console = Console()
err = Console(stderr=True)

messages_app = typer.Typer(help="Received messages.", no_args_is_help=True)
kommuner_app = typer.Typer(
    help="The municipalities per year (SSB Klass 131).", no_args_is_help=True
)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


@messages_app.command("list")
def messages_list(
    kommune: Annotated[str | None, typer.Option(help="4-digit kommunenummer")] = None,
    environment: Annotated[Environment | None, typer.Option()] = None,
    status: Annotated[MessageStatus | None, typer.Option()] = None,
    msg_id: Annotated[str | None, typer.Option(help="MsgHead MsgId or ebXML MessageId")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """The newest messages, with their status and AppRec status."""

    where = message_repo.MessageFilter(
        kommune=kommune,
        environment=environment.value if environment else None,
        status=status.value if status else None,
        msg_id=msg_id,
    )

    async def work(session: AsyncSession) -> list[message_repo.MessageSummary]:
        return await message_repo.list_messages(
            session, where, only_kommune=None, before=None, limit=limit
        )

    rows = run_db(work)
    table = Table("id", "received (UTC)", "status", "AppRec", "env", "kommune", "sender", "MsgId")
    for r in rows:
        table.add_row(
            str(r.id),
            _when(r.received_at),
            r.status,
            r.apprec_status or "",
            r.environment or "",
            r.kommune_nr or "",
            r.sender_her_id or "",
            r.msghead_msg_id or "",
        )
    console.print(table)


@messages_app.command("show")
def messages_show(message_id: Annotated[int, typer.Argument(min=1)]) -> None:
    """One message: header, timeline, findings per rule, receipt, emails."""

    async def work(session: AsyncSession) -> tuple[object, ...] | None:
        summary = await message_repo.summary_of(session, message_id)
        if summary is None:
            return None
        return (
            summary,
            await message_repo.message_events(session, message_id),
            await message_repo.finding_counts(session, message_id, only_kommune=None),
            await message_repo.outbox_of(session, message_id),
        )

    found = run_db(work)
    if found is None:
        err.print(f"[red]no message {message_id}[/]")
        raise typer.Exit(1)
    summary, events, counts, outbox = found
    assert isinstance(summary, message_repo.MessageSummary)
    head = Table("field", "value", title=f"message {message_id}")
    for name in summary.__slots__:
        value = getattr(summary, name)
        head.add_row(name, _when(value) if isinstance(value, datetime) else str(value or ""))
    console.print(head)
    timeline = Table("at (UTC)", "event", title="timeline")
    for e in events:  # type: ignore[attr-defined]
        timeline.add_row(_when(e.at), e.kind)
    console.print(timeline)
    rules = Table("rule", "severity", "AppRec code", "count", title="findings")
    for c in counts:  # type: ignore[attr-defined]
        rules.add_row(c.rule_id, c.severity, c.apprec_code or "", str(c.count))
    console.print(rules)
    mails = Table("id", "kind", "status", "attempts", "last error", title="emails")
    for o in outbox:  # type: ignore[attr-defined]
        mails.add_row(str(o.id), o.kind, o.status, str(o.attempts), o.last_error or "")
    console.print(mails)


def feilliste(
    kommune_nr: Annotated[str, typer.Argument(help="4-digit kommunenummer")],
    year: Annotated[int | None, typer.Option(help="reporting year")] = None,
    environment: Annotated[Environment | None, typer.Option()] = None,
    all_rows: Annotated[bool, typer.Option("--all", help="also corrected rows")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV for Excel on stdout")] = False,
) -> None:
    """A municipality's error list (personal data: the read is access-logged)."""

    if not (len(kommune_nr) == 4 and kommune_nr.isdigit()):
        err.print("[red]KOMMUNENR is 4 digits[/]")
        raise typer.Exit(2)
    settings = load_settings()
    query = _FeillisteQuery(
        kommune_nr=kommune_nr,
        year=year,
        environment=environment.value if environment else None,
        which=Which.ALL if all_rows else Which.OPEN,
    )
    result = run_db(lambda session: _read_feilliste_logged(settings, session, query))
    if as_csv:
        sys.stdout.buffer.write(to_csv(result.rows, with_fid=result.fid_published))
        sys.stdout.flush()
        return
    console.print(_feilliste_table(result, kommune_nr))


@dataclass(frozen=True, slots=True, kw_only=True)
class _FeillisteQuery:
    kommune_nr: str
    year: int | None
    environment: str | None
    which: Which


async def _read_feilliste_logged(
    settings: Settings, session: AsyncSession, q: _FeillisteQuery
) -> Feilliste:
    """The error list, with the access-log row in the same transaction (personal data)."""
    result = await read_feilliste(
        settings,
        session,
        q.kommune_nr,
        year=q.year,
        environment=q.environment,
        which=q.which,
        protector=load_protector(settings),
    )
    kommune_nr = q.kommune_nr
    record_access(session, cli_access("feilliste.read", f"cli feilliste {kommune_nr}", kommune_nr))
    return result


def _feilliste_table(result: Feilliste, kommune_nr: str) -> Table:
    table = Table(
        "ref",
        "mottatt",
        "notifikasjonGUID",
        "brukerNr",
        *(["Person-ID"] if result.fid_published else []),
        "regel",
        "kode",
        "rettet",
        title=f"feilliste {kommune_nr} {result.year} ({result.environment}, {result.filter})",
    )
    for r in result.rows:
        table.add_row(
            str(r.message_id),
            _when(r.received_at),
            r.notification_guid or "",
            r.bruker_nr or "",
            *([r.fid or ""] if result.fid_published else []),
            r.rule_id,
            r.apprec_code or "",
            "ja" if r.corrected else "nei",
        )
    return table


def coverage(
    year: Annotated[int | None, typer.Option(help="reporting year")] = None,
    environment: Annotated[Environment, typer.Option()] = Environment.PILOT,
    missing: Annotated[bool, typer.Option("--missing", help="only those not delivered")] = False,
) -> None:
    """Every municipality of the year: readable message received or not, and more."""

    settings = load_settings()
    now = utcnow()

    async def work(session: AsyncSession) -> Coverage:
        return await build_coverage(
            session,
            settings,
            year=year or default_year(settings, now),
            environment=environment.value,
            now=now,
        )

    result = run_db(work)
    table = Table(
        "kommune",
        "navn",
        "lesbar",
        "første",
        "siste",
        "beste",
        "godtatt",
        "åpne feil",
        "i tide",
        title=f"{result.delivered} av {result.total} kommuner har levert ({result.year}, "
        f"{result.environment}; frist {result.deadline})",
    )
    for k in result.kommuner:
        if missing and k.readable:
            continue
        table.add_row(
            k.kommune_nr,
            k.name,
            "ja" if k.readable else "nei",
            _when(k.first_readable_at),
            _when(k.last_readable_at),
            k.best_apprec_status or "",
            str(k.notifications_accepted),
            str(k.open_errors),
            {True: "ja", False: "nei", None: ""}[k.on_time],
        )
    console.print(table)


@kommuner_app.command("import")
def kommuner_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    year: Annotated[int | None, typer.Option(help="default: the year in the file name")] = None,
) -> None:
    """Load an SSB Klass 131 CSV export (`;`) as the list of a year (replaces that year)."""

    year = year or year_from_name(file.name)
    if year is None:
        err.print("[red]no year in the file name: give --year[/]")
        raise typer.Exit(2)
    try:
        kommuner = parse_klass_131(file.read_bytes())
    except SsbFormatError as exc:
        err.print(f"[red]{file}: {exc}[/]")
        raise typer.Exit(2) from None

    async def work(session: AsyncSession) -> int:
        return await replace_year(session, year, kommuner)

    count = run_db(work)
    console.print(f"{count} municipalities loaded for {year}")


def remind(
    year: Annotated[int | None, typer.Option(help="reporting year")] = None,
    environment: Annotated[Environment, typer.Option()] = Environment.PILOT,
) -> None:
    """Queue a reminder (Norwegian, no personal data) to the innsendingsansvarlig of every
    registered municipality without a readable message; once a day at most."""

    settings = load_settings()
    now = utcnow()

    async def work(session: AsyncSession) -> RemindReport:
        return await queue_reminders(
            session,
            settings,
            year=year or default_year(settings, now),
            environment=environment.value,
            now=now,
        )

    report = run_db(work)
    console.print(
        f"{report.missing} registered municipalities without a readable message; "
        f"{report.queued} reminders queued, {report.already} already queued today"
    )


def register(app: typer.Typer) -> None:
    """Add these commands to the `kpr-mottak` app (after `notify` is registered)."""
    from app.cli.notify import notify_app

    app.add_typer(messages_app, name="messages")
    app.add_typer(kommuner_app, name="kommuner")
    app.command("feilliste")(feilliste)
    app.command("coverage")(coverage)
    notify_app.command("remind")(remind)
