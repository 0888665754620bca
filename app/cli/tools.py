"""The offline tools of `kpr-mottak`: `validate`, and what it shares with `sample`
(app/cli/sample.py) and `send` (app/cli/send.py): the consoles, the exit codes, our HER id.

`validate` runs the server's own code (`app.intake.business.check_business` for a MsgHead, the
content format's check for a bare content document) and writes the AppRec the server would
send. `validate_document` is a plain function so tests can drive it without a terminal; the
command only parses options, prints and chooses the exit code: 0 OK, 1 OK with errors in
parts, 2 rejected (or a MessageError, or bad input).
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from lxml import etree
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from app.apprec.build import build_receipt, original_from_msghead, receiver_from_msghead
from app.apprec.mapping import receipt_outcome
from app.apprec.model import KPR_NAME, AppRecStatus, AppRecVersion, OriginalMsgRef, Party
from app.content import builtin, registry
from app.content.calendar import ReportingCalendar, parse_reporting_calendar
from app.content.model import ContentContext
from app.core.findings import Finding, Severity
from app.msghead.xmlutil import format_xs_datetime

KPR_HER = "131725"
SERVER_SKEW = datetime.timedelta(seconds=300)  # the server's default KPR_GEN_DATE_SKEW_SECONDS
SNIFF_BYTES = 4 * 1024
SNIFF_LIMIT = 1024 * 1024
DEFAULT_TABLE_ROWS = 50

console = Console()
err = Console(stderr=True)

EXIT_CODES = {
    AppRecStatus.OK: 0,
    AppRecStatus.OK_ERROR_IN_PART: 1,
    AppRecStatus.REJECTED: 2,
}
STATUS_STYLE = {
    AppRecStatus.OK: "green",
    AppRecStatus.OK_ERROR_IN_PART: "yellow",
    AppRecStatus.REJECTED: "red",
}


# --- validate --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Validation:
    kind: str  # "msghead", or the content root, e.g. "Melding"
    well_formed: bool
    findings: tuple[Finding, ...]
    status: AppRecStatus
    apprec: bytes
    notifications: int | None  # None when the content was not read


def sniff_root(data: bytes) -> etree.QName | None:
    """The root element's name, read from the start of the document only (None: not XML
    there). What comes after the root's start tag is the real check's business."""
    parser = etree.XMLPullParser(
        events=("start",), resolve_entities=False, no_network=True, load_dtd=False
    )
    for start in range(0, min(len(data), SNIFF_LIMIT), SNIFF_BYTES):
        try:
            parser.feed(data[start : start + SNIFF_BYTES])
        except etree.XMLSyntaxError:
            failed = True
        else:
            failed = False
        for _, el in parser.read_events():
            if isinstance(el, etree._Element):
                return etree.QName(el)
        if failed:
            return None
    return None


_NOT_XML = frozenset({"MSGHEAD-NOT-XML", "IPL-NOT-XML"})


def validate_document(
    data: bytes,
    *,
    now: datetime.datetime,
    kommuner: frozenset[str] | None = None,
    production: bool = False,
    our_her_ids: Sequence[str] = (KPR_HER,),
    version: AppRecVersion = AppRecVersion.V1_1,
    calendar: ReportingCalendar | None = None,
    file_name: str = "",
) -> Validation:
    """What the server would answer for this business document (no envelope, no registry,
    no history): its findings and the AppRec. A bare content document (the root namespace of
    a registered content format) is checked by that format alone."""
    context = ContentContext(
        now=now,
        allowed_kommuner=kommuner,
        allow_synthetic=not production,
        calendar=calendar,
    )
    root = sniff_root(data)
    fmt = builtin.lookup_namespace(root.namespace) if root is not None and root.namespace else None
    kpr = Party(name=KPR_NAME, her_id=our_her_ids[0] if our_her_ids else KPR_HER)
    if fmt is not None and root is not None and root.localname == fmt.root:
        judged = _judge_content(data, fmt, context, kpr=kpr, file_name=file_name)
    else:
        judged = _judge_msghead(
            data, context, kpr=kpr, our_her_ids=our_her_ids, file_name=file_name
        )
    findings = judged.findings
    apprec = build_receipt(
        findings,
        sender=judged.sender,
        receiver=judged.receiver,
        original=judged.original,
        now=now,
        version=version,
    )
    return Validation(
        kind=judged.kind,
        well_formed=root is not None and not any(f.rule.id in _NOT_XML for f in findings),
        findings=findings,
        status=receipt_outcome(findings).status,
        apprec=apprec,
        notifications=judged.notifications,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Judged:
    """A document's findings and what its AppRec says about whom."""

    kind: str
    findings: tuple[Finding, ...]
    sender: Party  # KPR, at the address the document was sent to
    receiver: Party
    original: OriginalMsgRef
    notifications: int | None  # None when the content was not read


def _judge_content(
    data: bytes,
    fmt: registry.ContentFormat,
    context: ContentContext,
    *,
    kpr: Party,
    file_name: str,
) -> _Judged:
    """A bare content document, checked by its format alone."""
    result = fmt.check(data, context)
    receiver = Party(
        name=f"Kommune {result.kommuner[0]}" if result.kommuner else "Ukjent avsender",
        her_id=None,
    )
    original = OriginalMsgRef(
        msg_type=fmt.msg_type,
        msg_type_dn=fmt.title,
        issue_date=format_xs_datetime(context.now),
        id=file_name or "ukjent",
    )
    return _Judged(
        kind=fmt.root,
        findings=result.findings,
        sender=kpr,
        receiver=receiver,
        original=original,
        notifications=len(result.notifications) if result.kommuner else None,
    )


def _judge_msghead(
    data: bytes,
    context: ContentContext,
    *,
    kpr: Party,
    our_her_ids: Sequence[str],
    file_name: str,
) -> _Judged:
    """A MsgHead, through the server's own business check (no envelope, no registry)."""
    from app.intake.business import HeadExpectations, check_business

    expect = HeadExpectations(now=context.now, our_her_ids=our_her_ids, skew=SERVER_SKEW)
    business = check_business(data, expect, context)
    head = business.msghead
    if head is not None and head.receiver_her_id in our_her_ids:
        kpr = Party(name=KPR_NAME, her_id=head.receiver_her_id)
    receiver = receiver_from_msghead(head, fallback=Party(name="Ukjent avsender", her_id=None))
    original = original_from_msghead(
        head, received_at=context.now, fallback_id=file_name or "ukjent"
    )
    content = business.content
    return _Judged(
        kind="MsgHead",
        findings=business.findings,
        sender=kpr,
        receiver=receiver,
        original=original,
        notifications=len(content.notifications) if content is not None else None,
    )


def findings_table(findings: Sequence[Finding], limit: int = DEFAULT_TABLE_ROWS) -> Table:
    """Rule, severity, location and detail. The detail never holds a fid (by contract)."""
    table = Table("rule", "severity")
    table.add_column("location", overflow="fold")
    table.add_column("detail", overflow="fold")
    for f in findings[:limit]:
        style = "red" if f.severity is Severity.ERROR else "yellow"
        table.add_row(
            f.rule.id, f"[{style}]{f.severity.value}[/]", escape(f.location), escape(f.detail)
        )
    if len(findings) > limit:
        table.add_row("…", "", "", f"{len(findings) - limit} funn til er ikke vist")
    return table


def default_apprec_path(file: Path) -> Path:
    """FILE with the suffix .apprec.xml (a.xml -> a.apprec.xml; a -> a.apprec.xml)."""
    return (
        file.with_suffix(".apprec.xml")
        if file.suffix
        else file.with_name(file.name + ".apprec.xml")
    )


def _calendar(text: str | None) -> ReportingCalendar | None:
    # As the server: with nothing configured, the standing deadlines apply to every year.
    try:
        return parse_reporting_calendar(text or "")
    except ValueError as exc:
        err.print(f"[red]invalid reporting calendar: {escape(str(exc))}[/]")
        raise typer.Exit(2) from None


def validate(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="MsgHead or Melding XML"),
    ],
    apprec_out: Annotated[
        Path | None,
        typer.Option("--apprec-out", help="Where to write the AppRec (default FILE.apprec.xml)"),
    ] = None,
    kommune: Annotated[
        list[str] | None,
        typer.Option("--kommune", help="Kommunenr the sender may report for (default: any)"),
    ] = None,
    production: Annotated[
        bool, typer.Option("--production", help="Judge as a production address (no test ids)")
    ] = False,
    apprec_version: Annotated[
        AppRecVersion, typer.Option("--apprec-version", help="AppRec version to write")
    ] = AppRecVersion.V1_1,
    receiver: Annotated[
        list[str] | None,
        typer.Option("--receiver", help=f"KPR HER-id(s) we answer for (default {KPR_HER})"),
    ] = None,
    reporting_calendar: Annotated[
        str | None,
        typer.Option(envvar="KPR_REPORTING_CALENDAR", help="Reporting calendar JSON"),
    ] = None,
    limit: Annotated[int, typer.Option(help="Findings to show at most")] = DEFAULT_TABLE_ROWS,
) -> None:
    """Validate a MsgHead or bare Melding offline and write the AppRec the server would send.
    Exit 0 OK, 1 OK with errors in parts, 2 rejected."""
    calendar = _calendar(reporting_calendar)
    result = validate_document(
        _read_input(file),
        now=datetime.datetime.now(datetime.UTC),
        kommuner=frozenset(kommune) if kommune else None,
        production=production,
        our_her_ids=tuple(receiver or (KPR_HER,)),
        version=apprec_version,
        calendar=calendar,
        file_name=file.name,
    )
    if not result.well_formed:
        err.print(
            f"[bold red]{escape(str(file))} is not XML[/] (not well-formed, or not XML at all): "
            "the server would reject it with AppRec status 2, T01."
        )
    target = apprec_out or default_apprec_path(file)
    target.write_bytes(result.apprec)
    _print_validation(result, limit)
    console.print(f"AppRec written to {escape(str(target))}")
    raise typer.Exit(EXIT_CODES[result.status])


def _read_input(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        err.print(f"[red]cannot read {escape(str(file))}: {escape(exc.strerror or '')}[/]")
        raise typer.Exit(2) from None


def _print_validation(result: Validation, limit: int) -> None:
    """The findings table, the AppRec status with counts, and the findings per rule."""
    if result.findings:
        console.print(findings_table(result.findings, limit))
    per_rule = Counter(f.rule.id for f in result.findings)
    style = STATUS_STYLE[result.status]
    console.print(
        f"{result.kind}: AppRec status [{style}]{result.status.value} {result.status.dn}[/]"
        + (f", {result.notifications} notifikasjoner" if result.notifications is not None else "")
        + (f", {len(result.findings)} funn" if result.findings else ", ingen funn")
    )
    if per_rule:
        console.print("per regel: " + ", ".join(f"{r} {n}" for r, n in per_rule.most_common()))


def register(app: typer.Typer) -> None:
    """Add `validate` to the `kpr-mottak` app."""
    app.command("validate")(validate)
