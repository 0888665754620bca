"""`kpr-mottak sample`: streams a synthetic IPLOS message (optionally in a MsgHead, optionally
with faults) to a file. `write_sample_file` is a plain function so tests can drive it without a
terminal; the command only parses options, prints and chooses the exit code.
"""

from __future__ import annotations

import datetime
import io
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, BinaryIO, cast

import typer
from rich.markup import escape

from app.cli.progress import progress_bar
from app.cli.tools import KPR_HER, err
from app.content.iplos.rules import RULES as IPLOS_RULES
from app.content.model import EMPTY_GUID
from app.dev.sample import SCENARIOS, wrap_in_msghead, write_sample
from app.msghead.xmlutil import OSLO

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


def register(app: typer.Typer) -> None:
    """Add `sample` to the `kpr-mottak` app."""
    app.command("sample")(sample)
