"""The offline and test-client tools of `kpr-mottak`: `validate`, `sample` and `send`.

`validate` runs the server's own code (`app.intake.business.check_business` for a MsgHead, the
content format's check for a bare content document) and writes the AppRec the server would
send. `sample` streams a synthetic IPLOS message (optionally in a MsgHead) to a file. `send`
wraps a MsgHead as a municipality's EPJ would (sign, gzip, encrypt, ebXML) and posts it.

The pieces (`validate_document`, `write_sample_file`, `send_message`, `summarize_reply`) are
plain functions so tests can drive them without a terminal; the commands only parse options,
print and choose the exit code: 0 OK, 1 OK with errors in parts, 2 rejected (or a
MessageError, or bad input).
"""

from __future__ import annotations

import asyncio
import datetime
import io
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, BinaryIO, cast

import httpx
import typer
from cryptography import x509
from lxml import etree
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from app.apprec.build import build_receipt, original_from_msghead, receiver_from_msghead
from app.apprec.mapping import receipt_outcome
from app.apprec.model import KPR_NAME, AppRecStatus, AppRecVersion, OriginalMsgRef, Party
from app.apprec.parse import AppRecInvalid, parse_apprec
from app.cli_progress import progress_bar
from app.content import builtin, registry
from app.content.calendar import ReportingCalendar, parse_reporting_calendar
from app.content.iplos.rules import RULES as IPLOS_RULES
from app.content.iplos.sample import SCENARIOS, wrap_in_msghead, write_sample
from app.content.model import EMPTY_GUID, ContentContext
from app.core.findings import Finding, Severity
from app.core.xmlparse import XmlRejected
from app.msghead.xmlutil import OSLO, format_xs_datetime
from app.security.keys import KeyPair, load_certificate, load_key_pair
from app.settings import DEV_PKI_DIR

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
    from app.intake.business import check_business

    business = check_business(
        data,
        now=context.now,
        ebxml_from_her=None,
        ebxml_to_her=None,
        party_her=None,
        our_her_ids=our_her_ids,
        skew=SERVER_SKEW,
        context=context,
    )
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


# Faults that only show against a context the file cannot carry.
_CONTEXT_FAULTS = {
    "IPL-GUID-KNOWN": "against the receiver's history (the server, after an earlier message)",
    "IPL-KOMMUNE-NOT-ALLOWED": "where the sender may not report for it (validate --kommune)",
    "IPL-FID-SYNTHETIC": "on a production address (validate --production)",
    "IPL-CALENDAR-LATE": "when validated after the deadline (validate --reporting-calendar)",
    "IPL-CALENDAR-AFTER-CORRECTION": (
        "for a configured year past its correction deadline (validate --reporting-calendar)"
    ),
    "IPL-CALENDAR-PILOT-WINDOW": (
        "on a pilot address outside a configured pilot window (the server; validate judges "
        "like a production address)"
    ),
    "IPL-HENDELSEDATO-FUTURE": "in a MsgHead (its GenDate is set to 1 February of --year)",
}
# Faults of the MsgHead around the content, made by `sample` itself.
GENDATE_FUTURE = "MSGHEAD-GENDATE-FUTURE"  # local time written with Z: the classic EPJ bug


def _sample_gen_date(faults: Sequence[str], year: int) -> datetime.datetime | None:
    """The GenDate a sample's faults need (None: now)."""
    if GENDATE_FUTURE in faults:
        return datetime.datetime.now(OSLO).replace(microsecond=0, tzinfo=datetime.UTC)
    if "IPL-HENDELSEDATO-FUTURE" in faults:
        return datetime.datetime(year, 2, 1, 12, tzinfo=datetime.UTC)
    return None


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


# --- sample ----------------------------------------------------------------------------------


class _Counting:
    """A write-only sink that forwards to `out`, drops a leading XML declaration when asked
    (content inside a MsgHead), and reports each chunk's notifications. `write_sample` calls
    only `write`, with whole notifications per chunk."""

    def __init__(
        self, out: BinaryIO, on_notifications: Callable[[int], None], *, strip_decl: bool
    ) -> None:
        self._out = out
        self._on = on_notifications
        self._strip = strip_decl

    def write(self, data: bytes) -> int:
        n = len(data)
        chunk = data
        if self._strip:
            self._strip = False
            stripped = chunk.lstrip()
            if stripped.startswith(b"<?xml"):
                chunk = stripped[stripped.index(b"?>") + 2 :].lstrip()
        self._out.write(chunk)
        count = chunk.count(b"<Notifikasjon ")
        if count:
            self._on(count)
        return n


def write_sample_file(
    out: BinaryIO,
    notifications: int,
    kommune: str,
    *,
    faults: Sequence[str] = (),
    seed: int = 0,
    year: int = 2018,
    msghead: bool = True,
    sender_her: int = 8000001,
    receiver_her: int = int(KPR_HER),
    msg_id: str | None = None,
    gen_date: datetime.datetime | None = None,
    start_lopenr: int = 1,
    previous_guid: str = EMPTY_GUID,
    on_notifications: Callable[[int], None] = lambda n: None,
) -> None:
    """Stream a sample Melding (in a MsgHead unless `msghead` is False) to `out`. The MsgHead
    is written around the streamed content, so memory stays flat for any N."""
    head = tail = b""
    if msghead:
        marker = b"\x00CONTENT\x00"
        wrapped = wrap_in_msghead(
            marker,
            sender_her,
            receiver_her,
            msg_id or str(uuid.uuid4()),
            gen_date or datetime.datetime.now(datetime.UTC).replace(microsecond=0),
        )
        head, tail = wrapped.split(marker)
    out.write(head)
    sink = _Counting(out, on_notifications, strip_decl=msghead)
    write_sample(
        cast(BinaryIO, sink),
        notifications,
        kommune,
        faults,
        seed,
        year=year,
        start_lopenr=start_lopenr,
        previous_guid=previous_guid,
    )
    out.write(tail)


def sample(
    notifications: Annotated[int, typer.Option("--notifications", min=0, help="How many")],
    kommune: Annotated[str, typer.Option("--kommune", help="Kommunenr (4 digits)")],
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            "--faults",
            help="Rule id to break, a scenario (e.g. two-events) or MSGHEAD-GENDATE-FUTURE "
            "(repeatable)",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same message)")] = 0,
    year: Annotated[int, typer.Option(help="Reporting year of the events")] = 2018,
    msghead: Annotated[bool, typer.Option("--msghead/--no-msghead", help="Wrap in MsgHead")] = True,
    sender_her: Annotated[int, typer.Option("--sender-her", help="MsgHead sender")] = 8000001,
    receiver_her: Annotated[int, typer.Option("--receiver-her", help="MsgHead receiver")] = int(
        KPR_HER
    ),
    out: Annotated[Path | None, typer.Option("--out", help="Output file (default stdout)")] = None,
    start_lopenr: Annotated[
        int, typer.Option("--start-lopenr", min=0, help="First løpenummer (continue a sequence)")
    ] = 1,
    previous_guid: Annotated[
        str,
        typer.Option("--previous-guid", help="notifikasjonForrigeGUID of the first notification"),
    ] = EMPTY_GUID,
    msg_id: Annotated[
        str | None, typer.Option("--msg-id", help="MsgHead MsgId (default: a new UUID)")
    ] = None,
    gen_date: Annotated[
        str | None,
        typer.Option("--gen-date", help="MsgHead GenDate, ISO 8601 (default: now)"),
    ] = None,
) -> None:
    """Write a synthetic IPLOS message (valid, or with deliberate faults) with synthetic
    identities, optionally in a MsgHead. The same arguments write the same bytes (with
    --msg-id and --gen-date), so identical resends, sequences split over messages (--seed,
    --start-lopenr, --previous-guid) and reordering can be tried."""
    args = _SampleArgs(
        notifications=notifications,
        kommune=kommune,
        seed=seed,
        year=year,
        msghead=msghead,
        sender_her=sender_her,
        receiver_her=receiver_her,
        start_lopenr=start_lopenr,
        previous_guid=previous_guid,
        msg_id=msg_id,
    )
    plan = _plan_sample(args, list(fault or []), gen_date)
    _emit_sample(args, plan, out)


@dataclass(frozen=True, slots=True, kw_only=True)
class _SampleArgs:
    """The `sample` options that go to the generator as given."""

    notifications: int
    kommune: str
    seed: int
    year: int
    msghead: bool
    sender_her: int
    receiver_her: int
    start_lopenr: int
    previous_guid: str
    msg_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _SamplePlan:
    """The faults the generator writes and the MsgHead GenDate (some faults need one)."""

    faults: tuple[str, ...]
    gen_date: datetime.datetime | None


def _plan_sample(args: _SampleArgs, fault: list[str], gen_date: str | None) -> _SamplePlan:
    """The --fault and --gen-date options checked (exit 2 on anything the generator refuses,
    before any file is touched)."""
    faults = _sample_faults(fault, msghead=args.msghead)
    generated = _sample_gen_date_option(gen_date, faults, args.year)
    faults = [f for f in faults if f != GENDATE_FUTURE]
    for f in faults:
        if f in _CONTEXT_FAULTS:
            err.print(f"note: {f} shows only {_CONTEXT_FAULTS[f]}")
    _check_sample_args(args.notifications, args.kommune, faults, args.seed, args.year)
    return _SamplePlan(faults=tuple(faults), gen_date=generated)


def _emit_sample(args: _SampleArgs, plan: _SamplePlan, out: Path | None) -> None:
    """Write the sample to `out` (with progress) or to stdout."""

    def run(target: BinaryIO, advance: Callable[[int], None]) -> None:
        write_sample_file(
            target,
            args.notifications,
            args.kommune,
            faults=list(plan.faults),
            seed=args.seed,
            year=args.year,
            msghead=args.msghead,
            sender_her=args.sender_her,
            receiver_her=args.receiver_her,
            msg_id=args.msg_id,
            gen_date=plan.gen_date,
            start_lopenr=args.start_lopenr,
            previous_guid=args.previous_guid,
            on_notifications=advance,
        )

    if out is None:
        import sys

        run(sys.stdout.buffer, lambda n: None)
        return
    _run_with_progress(out, args.notifications, run)
    what = "MsgHead with a Melding" if args.msghead else "Melding"
    extra = f" and faults {', '.join(plan.faults)}" if plan.faults else ""
    err.print(escape(f"wrote {what} of {args.notifications} notifications{extra} to {out}"))


def _sample_faults(faults: list[str], *, msghead: bool) -> list[str]:
    """The --fault values, refused (exit 2) unless each is a rule, a scenario or the MsgHead
    fault (which needs a MsgHead)."""
    valid = [r.id for r in IPLOS_RULES] + sorted(SCENARIOS) + [GENDATE_FUTURE]
    unknown = [f for f in faults if f not in valid]
    if unknown:
        err.print(f"[red]unknown fault(s): {escape(', '.join(unknown))}[/]")
        err.print("valid faults: " + ", ".join(valid))
        raise typer.Exit(2)
    if GENDATE_FUTURE in faults and not msghead:
        err.print(f"[red]{GENDATE_FUTURE} needs --msghead[/]")
        raise typer.Exit(2)
    return faults


def _sample_gen_date_option(
    gen_date: str | None, faults: Sequence[str], year: int
) -> datetime.datetime | None:
    """--gen-date when given (exit 2 unless ISO 8601), else what the faults need."""
    if gen_date is None:
        return _sample_gen_date(faults, year)
    try:
        return datetime.datetime.fromisoformat(gen_date)
    except ValueError:
        err.print(f"[red]--gen-date is not ISO 8601: {escape(gen_date)}[/]")
        raise typer.Exit(2) from None


def _check_sample_args(
    notifications: int, kommune: str, faults: Sequence[str], seed: int, year: int
) -> None:
    """Exit 2 on arguments the generator refuses, before any file is touched."""
    if len(kommune) != 4 or not kommune.isdigit():
        err.print(f"[red]--kommune must be 4 digits, not {escape(repr(kommune))}[/]")
        raise typer.Exit(2)
    try:  # the generator's own argument checks
        write_sample(io.BytesIO(), min(notifications, 2), kommune, faults, seed, year=year)
    except ValueError as exc:
        err.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from None


def _run_with_progress(
    out: Path, notifications: int, run: Callable[[BinaryIO, Callable[[int], None]], None]
) -> None:
    """`run` into the file `out`, with a progress bar on stderr for large samples."""
    with (
        out.open("wb") as target,
        progress_bar(err, disable=notifications < 10_000) as progress,
    ):
        task = progress.add_task("notifikasjoner", total=notifications)
        run(target, lambda n: progress.advance(task, n))


# --- send ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplySummary:
    http_status: int
    ack_ref: str | None  # Acknowledgment RefToMessageId
    ack_timestamp: datetime.datetime | None
    errors: tuple[tuple[str, str, str | None], ...]  # MessageError (errorCode, severity, desc)
    apprec_status: str | None
    apprec_errors: tuple[tuple[str, str | None], ...]  # (code, OT)
    problems: tuple[str, ...]  # the reply itself could not be read or verified
    exit_code: int


def summarize_reply(
    status_code: int, body: bytes, content_type: str, decryption: tuple[KeyPair, ...]
) -> ReplySummary:
    """Read a kpr-mottak reply: Acknowledgment, MessageError and the (decrypted) AppRec."""
    from app.client import read_reply

    problems: list[str] = []
    if not content_type.startswith("multipart/"):
        text = body[:300].decode("utf-8", "replace")
        return ReplySummary(
            status_code, None, None, (), None, (), (f"HTTP {status_code}: {text}",), 2
        )
    reply = read_reply(body, content_type, decryption=decryption)
    problems.extend(f"{f.rule.id}: {f.detail}" for f in reply.findings)
    problems.extend(f"signature: {f.rule.id}: {f.detail}" for f in reply.signature_findings)
    header = reply.header
    ack = header.acknowledgment if header is not None else None
    errors = tuple(
        (e.error_code, e.severity, e.description) for e in (header.errors if header else ())
    )
    apprec_status: str | None = None
    apprec_errors: tuple[tuple[str, str | None], ...] = ()
    if reply.apprec is not None:
        try:
            parsed = parse_apprec(reply.apprec)
            apprec_status = parsed.status
            apprec_errors = tuple((e.code, e.ot) for e in parsed.errors)
        except AppRecInvalid as exc:
            problems.append(f"AppRec: {exc}")
    elif header is not None and not errors:
        problems.append("the reply carries no AppRec we could read (wrong decryption key?)")
    if errors and any(e[1] == "Error" for e in errors):
        code = 2
    elif apprec_status is not None:
        try:
            code = EXIT_CODES[AppRecStatus(apprec_status)]
        except ValueError:
            code = 2
    else:
        code = 2
    return ReplySummary(
        status_code,
        ack.ref_to_message_id if ack is not None else None,
        ack.timestamp if ack is not None else None,
        errors,
        apprec_status,
        apprec_errors,
        tuple(problems),
        code,
    )


def print_reply(summary: ReplySummary, message_id: str) -> None:
    console.print(escape(f"sent MessageId {message_id}: HTTP {summary.http_status}"))
    if summary.ack_ref is not None:
        when = summary.ack_timestamp.isoformat() if summary.ack_timestamp else "?"
        console.print(
            f"[green]Acknowledgment[/] RefToMessageId {escape(summary.ack_ref)} at {when}"
        )
    for code, severity, description in summary.errors:
        console.print(
            f"[red]MessageError[/] {escape(code)} ({escape(severity)}): {escape(description or '')}"
        )
    if summary.apprec_status is not None:
        try:
            status = AppRecStatus(summary.apprec_status)
            label = f"[{STATUS_STYLE[status]}]{status.value} {status.dn}[/]"
        except ValueError:
            label = escape(summary.apprec_status)
        console.print(f"AppRec status {label}")
        if summary.apprec_errors:
            table = Table("code", "OT")
            for code, ot in summary.apprec_errors:
                table.add_row(escape(code), escape(ot or ""))
            console.print(table)
    for problem in summary.problems:
        err.print(f"[yellow]{escape(problem)}[/]")


@dataclass(frozen=True, slots=True)
class SendKeys:
    signing: KeyPair | None  # the municipality's signing key (MsgHead and envelope)
    encrypt_to: x509.Certificate | None  # KPR's encryption certificate
    decryption: tuple[KeyPair, ...]  # the municipality's encryption key, to read the AppRec


def load_send_keys(pki_dir: Path, *, sign: bool, encrypt: bool) -> SendKeys:
    """The municipality's signing and decryption keys and KPR's encryption certificate from a
    dev PKI directory (files written by `kpr-mottak dev-pki`)."""

    def pair(name: str) -> KeyPair:
        return load_key_pair(
            (pki_dir / f"{name}.key").read_bytes(), (pki_dir / f"{name}.crt").read_bytes()
        )

    signing = pair("municipality-signing") if sign else None
    encrypt_to = (
        load_certificate((pki_dir / "kpr-encryption.crt").read_bytes()) if encrypt else None
    )
    decryption = (pair("municipality-encryption"),) if encrypt else ()
    return SendKeys(signing, encrypt_to, decryption)


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: str
    summary: ReplySummary


async def send_message(
    client: httpx.AsyncClient,
    url: str,
    msghead: bytes,
    keys: SendKeys,
    *,
    from_her: str,
    to_her: str = KPR_HER,
    cpa_id: str = "kpr-pilot",
    gzip: bool = False,
) -> Sent:
    """Build the ebXML message as an EPJ would, post it and read the reply."""
    from app.client import SendOptions, build_epj_message

    signing, encrypt_to = keys.signing, keys.encrypt_to
    options = SendOptions(
        from_her=from_her,
        to_her=to_her,
        cpa_id=cpa_id,
        sign_document=signing is not None,
        gzip=gzip,
    )
    built = build_epj_message(msghead, options, signing=signing, encrypt_to=encrypt_to)
    response = await client.post(url, content=built.body, headers=built.http_headers)
    summary = summarize_reply(
        response.status_code,
        response.content,
        response.headers.get("content-type", ""),
        keys.decryption,
    )
    return Sent(built.message_id, summary)


def send(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A MsgHead XML")
    ],
    url: Annotated[
        str, typer.Option("--url", help="The receiver, e.g. http://127.0.0.1:8080/ebms")
    ],
    from_her: Annotated[str, typer.Option("--from-her", help="Our (sender) HER-id")] = "8000001",
    to_her: Annotated[str, typer.Option("--to-her", help="KPR's HER-id")] = KPR_HER,
    cpa_id: Annotated[str, typer.Option("--cpa-id", help="CPA id")] = "kpr-pilot",
    pki_dir: Annotated[
        Path, typer.Option("--pki-dir", envvar="KPR_PKI_DIR", help="Dev PKI directory")
    ] = DEV_PKI_DIR,
    encrypt: Annotated[bool, typer.Option("--encrypt/--no-encrypt", help="CMS-encrypt")] = True,
    sign: Annotated[
        bool, typer.Option("--sign/--no-sign", help="Sign MsgHead and envelope")
    ] = True,
    gzip: Annotated[bool, typer.Option("--gzip", help="gzip before encrypting")] = False,
    timeout: Annotated[float, typer.Option(help="HTTP timeout in seconds")] = 120.0,
    amqp: Annotated[
        bool, typer.Option("--amqp", help="Over AMQP 1.0 the Helsenorge way; --url amqp://…")
    ] = False,
) -> None:
    """Send a MsgHead as a municipality's EPJ would (signed, encrypted ebXML) and print the
    Acknowledgment and the AppRec (or the MessageError). Exit codes as `validate`."""
    if amqp:
        raise typer.Exit(send_amqp(file, url, from_her, to_her, pki_dir, timeout))
    try:
        keys = load_send_keys(pki_dir, sign=sign, encrypt=encrypt)
    except (OSError, ValueError) as exc:
        err.print(f"[red]cannot load keys from {escape(str(pki_dir))}: {escape(str(exc))}[/]")
        err.print("create a development PKI with `kpr-mottak dev-pki`, or pass --pki-dir")
        raise typer.Exit(2) from None
    msghead = file.read_bytes()

    async def run() -> Sent:
        async with httpx.AsyncClient(timeout=timeout) as client:
            return await send_message(
                client,
                url,
                msghead,
                keys,
                from_her=from_her,
                to_her=to_her,
                cpa_id=cpa_id,
                gzip=gzip,
            )

    try:
        sent = asyncio.run(run())
    except httpx.HTTPError as exc:
        err.print(f"[red]could not post to {escape(url)}: {escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    except XmlRejected as exc:  # nothing was sent: the MsgHead could not be read to sign it
        err.print(f"[red]{escape(str(file))} is not a readable MsgHead: {escape(str(exc))}[/]")
        err.print("check the file with `kpr-mottak validate`, or make one with `kpr-mottak sample`")
        raise typer.Exit(2) from None
    print_reply(sent.summary, sent.message_id)
    raise typer.Exit(sent.summary.exit_code)


from app.cli_amqp import send_amqp  # noqa: E402


def register(app: typer.Typer) -> None:
    """Add `validate`, `sample` and `send` to the `kpr-mottak` app."""
    app.command("validate")(validate)
    app.command("sample")(sample)
    app.command("send")(send)
