"""Validating a large IPLOS message, next to xmllint on the same file, in one run.

    python -m bench.validate [--notifications 100000] [--no-msghead]

Issue 4: validates a 100 000-notification `Melding` (written by the project's sample
generator) and reports wall seconds and peak memory (the child process's maximum resident
set, from wait4) for:

- `ours`: `validate_melding` (parse, the project's XSD, every content rule) in a fresh
  Python process; `python baseline` is the same process doing only the imports, so the
  memory the validation itself needs is the difference;
- `ours via MsgHead`: the intake's `check_business` on the same Melding wrapped in a MsgHead
  (MsgHead parse and checks, then the content), as the server runs it after decryption;
- `ours streaming (file)` and `ours streaming MsgHead` (issue 11): `validate_stream` and
  `validate_msghead_content` reading the file as a stream (the same findings as the tree path);
- `ours history keys MsgHead`: `msghead_history_keys`, the separate pass the intake makes over
  the same MsgHead before validation, to read the history for exactly the message's keys;
- `xmllint --noout --stream --schema schemas/iplos-56.0.0/XPR-ipl-56.0.0.xsd FILE` (Debian's
  libxml2-utils), a streaming XSD check only, and the same against the official XSD from
  ../shared/reference when it is there.

The Python children time their own validation too (`inner s`: without interpreter start and
imports).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import ratio

ROOT = Path(__file__).resolve().parent.parent
OUR_XSD = ROOT / "schemas" / "iplos-56.0.0" / "XPR-ipl-56.0.0.xsd"
OFFICIAL_XSD = ROOT.parent / "shared" / "reference" / "xsd" / "iplos-56.0.0" / "XPR(ipl).xsd"
KOMMUNE = "0301"
SENDER_HER = 8000001
RECEIVER_HER = 131725


@dataclass(frozen=True, slots=True)
class Measured:
    name: str
    seconds: float
    peak_mb: float
    returncode: int
    inner_seconds: float | None = None
    summary: str = ""


GNU_TIME = Path("/usr/bin/time")


def measure(name: str, cmd: Sequence[str], out_dir: Path) -> Measured:
    """Run `cmd` to completion; wall seconds and the child's peak RSS. The peak comes from GNU
    time (`%M`) when it is installed: a child forked from this process would otherwise count
    the pages it shares with us before its exec. Without it, wait4's ru_maxrss (an upper
    bound for small children)."""
    stem = name.replace(" ", "_")
    stdout, stderr, rss_file = (out_dir / f"{stem}.{ext}" for ext in ("out", "err", "rss"))
    timed = [str(GNU_TIME), "-f", "%M", "-o", str(rss_file), *cmd] if GNU_TIME.is_file() else cmd
    with stdout.open("wb") as so, stderr.open("wb") as se:
        t0 = time.perf_counter()
        proc = subprocess.Popen(timed, cwd=ROOT, stdout=so, stderr=se)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_kb = float(usage.ru_maxrss)  # kilobytes on Linux
    if rss_file.is_file():
        lines = rss_file.read_text().strip().splitlines()
        peak_kb = float(lines[-1])  # GNU time adds "Command exited with ..." before it
    inner: float | None = None
    summary = stderr.read_text(errors="replace").strip().splitlines()[-1:] or [""]
    text = stdout.read_text(errors="replace").strip()
    if text.startswith("{"):
        data = json.loads(text)
        inner = float(data["seconds"])
        summary = [str(data["summary"])]
    return Measured(name, seconds, peak_kb / 1024, proc.returncode, inner, summary[0])


def content_context() -> object:
    from app.content.model import ContentContext

    return ContentContext(
        now=datetime.now(UTC), allowed_kommuner=frozenset({KOMMUNE}), allow_synthetic=True
    )


def child(mode: str, path: Path) -> int:
    """Inside the measured process: validate and print {"seconds", "summary"} as JSON."""
    from app.content.iplos import validate_melding
    from app.content.model import ContentContext
    from app.intake.business import HeadExpectations, check_business

    if mode == "baseline":
        print(json.dumps({"seconds": 0.0, "summary": "imports only"}))
        return 0
    ctx = content_context()
    assert isinstance(ctx, ContentContext)
    if mode == "keys-msghead":
        from app.content.iplos.stream import msghead_history_keys

        t0 = time.perf_counter()
        with path.open("rb") as file:
            keys = msghead_history_keys(file)
        seconds = time.perf_counter() - t0
        assert keys is not None
        summary = f"{len(keys.guids)} GUIDs, {len(keys.bruker_nrs)} brukerNr"
        print(json.dumps({"seconds": seconds, "summary": summary}))
        return 0
    if mode in ("stream", "stream-msghead"):
        from app.content.iplos.stream import validate_msghead_content, validate_stream

        t0 = time.perf_counter()
        with path.open("rb") as file:  # read as a stream from the file, as from a spool
            streamed = (
                validate_stream(file, ctx)
                if mode == "stream"
                else validate_msghead_content(file, ctx)
            )
        assert streamed is not None
        findings = streamed.findings
        count = len(streamed.notifications)
        seconds = time.perf_counter() - t0
        print(json.dumps({"seconds": seconds, "summary": f"{count} notifications, "
                                                         f"{len(findings)} findings"}))  # fmt: skip
        return 0
    data = path.read_bytes()
    t0 = time.perf_counter()
    if mode == "melding":
        result = validate_melding(data, ctx)
        findings = result.findings
        count = len(result.notifications)
    else:
        expect = HeadExpectations(
            now=ctx.now,
            ebxml_from_her=str(SENDER_HER),
            ebxml_to_her=str(RECEIVER_HER),
            party_her=str(SENDER_HER),
            our_her_ids=[str(RECEIVER_HER)],
            skew=timedelta(minutes=5),
        )
        business = check_business(data, expect, ctx)
        findings = business.findings
        count = len(business.content.notifications) if business.content else 0
    seconds = time.perf_counter() - t0
    rules = sorted({f.rule.id for f in findings})
    summary = f"{count} notifications, {len(findings)} findings" + (
        f" ({', '.join(rules[:5])})" if rules else ""
    )
    print(json.dumps({"seconds": seconds, "summary": summary}))
    return 0


def write_files(tmp: Path, notifications: int) -> tuple[Path, Path]:
    from app.dev.sample import wrap_in_msghead, write_sample

    melding = tmp / "melding.xml"
    with melding.open("wb") as out:
        write_sample(out, notifications, KOMMUNE)
    msghead = tmp / "msghead.xml"
    msghead.write_bytes(
        wrap_in_msghead(
            melding.read_bytes(),
            SENDER_HER,
            RECEIVER_HER,
            str(uuid.uuid4()),
            datetime.now(UTC).replace(microsecond=0),
        )
    )
    return melding, msghead


def _table(rows: Sequence[Measured], reference: Measured | None) -> None:
    print(f"{'':<26} {'wall s':>8} {'inner s':>8} {'peak MB':>9} {'exit':>5}")
    for r in rows:
        inner = f"{r.inner_seconds:>8.2f}" if r.inner_seconds is not None else f"{'':>8}"
        print(f"{r.name:<26} {r.seconds:>8.2f} {inner} {r.peak_mb:>9.1f} {r.returncode:>5}")
    if reference is None:
        return
    print(f"\nratios against {reference.name} (ours / xmllint):")
    for r in rows:
        if r is reference or r.name == "python baseline" or r.name.startswith("xmllint"):
            continue
        print(
            f"  {r.name:<25} time {ratio(r.seconds, reference.seconds):>6.2f}x"
            f"   peak memory {ratio(r.peak_mb, reference.peak_mb):>6.2f}x"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validate", description=__doc__)
    parser.add_argument("--notifications", type=int, default=100_000)
    parser.add_argument("--no-msghead", action="store_true", help="skip the MsgHead variant")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (files, outputs)")
    parser.add_argument(
        "--child",
        choices=("baseline", "melding", "msghead", "stream", "stream-msghead", "keys-msghead"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("file", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.file)
    if args.notifications < 1:
        parser.error("--notifications must be positive")

    tmp = Path(tempfile.mkdtemp(prefix="kpr-bench-validate-"))
    try:
        t0 = time.perf_counter()
        melding, msghead = write_files(tmp, args.notifications)
        size_mb = melding.stat().st_size / 1e6
        print(
            f"wrote {args.notifications} notifications ({size_mb:.1f} MB) in "
            f"{time.perf_counter() - t0:.1f} s\n"
        )
        me = [sys.executable, "-m", "bench.validate", "--child"]
        rows = [
            measure("python baseline", [*me, "baseline", str(melding)], tmp),
            measure("ours", [*me, "melding", str(melding)], tmp),
            measure("ours streaming (file)", [*me, "stream", str(melding)], tmp),
        ]
        if not args.no_msghead:
            rows.append(measure("ours via MsgHead", [*me, "msghead", str(msghead)], tmp))
            rows.append(
                measure("ours streaming MsgHead", [*me, "stream-msghead", str(msghead)], tmp)
            )
            rows.append(
                measure("ours history keys MsgHead", [*me, "keys-msghead", str(msghead)], tmp)
            )
        reference: Measured | None = None
        xmllint = shutil.which("xmllint")
        if xmllint is None:
            print("xmllint not found (apt-get install libxml2-utils): no reference\n")
        else:
            cmd = [xmllint, "--noout", "--stream", "--schema"]
            reference = measure("xmllint", [*cmd, str(OUR_XSD), str(melding)], tmp)
            rows.append(reference)
            if OFFICIAL_XSD.is_file():
                rows.append(
                    measure("xmllint official XSD", [*cmd, str(OFFICIAL_XSD), str(melding)], tmp)
                )
        print(
            f"{args.notifications} notifications, python {sys.version.split()[0]}, "
            f"{os.cpu_count()} CPUs\n"
        )
        _table(rows, reference)
        print()
        for r in rows:
            if r.summary:
                print(f"{r.name}: {r.summary}")
        if args.keep:
            print(f"\nkept {tmp}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
