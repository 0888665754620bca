"""The business signature of a large MsgHead: xmlsec on the tree against the stream path.

    python -m bench.dsig_stream [--notifications 100000]

Issue 11: the tree the enveloped ds:Signature's check built was most of a large message's
memory. One MsgHead of `--notifications` notifications (the project's sample generator,
signed by `sign_document`) is written to a file, then each path runs in a fresh Python
process that reports its own seconds (reading the file and verifying; not interpreter start
and imports) and its peak RSS (VmHWM):

- `tree`: `parse_xml_file` + `verify_document` (xmlsec), the intake's path before;
- `stream`: `verify_document_stream`, the intake's path from `DSIG_STREAM_MIN_BYTES` on;
- `baseline`: the same process doing only the imports, for what the verifying itself costs.

Both must give the same verdict (valid); the ratio is stream / tree.
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
from datetime import UTC, datetime
from pathlib import Path

from bench import ratio
from bench.large import peak_rss_mb

MODES = ("baseline", "tree", "stream")


def child(mode: str, path: Path) -> int:
    """Inside the measured process: verify and print {"seconds", "valid", "rss_mb"}."""
    from app.core.xmlparse import parse_xml_file
    from app.security.dsig_stream import verify_document_stream
    from app.security.xmldsig import verify_document

    started = time.perf_counter()
    valid: bool | None = None
    if mode != "baseline":
        with path.open("rb") as source:
            if mode == "tree":
                verdict = verify_document(parse_xml_file(source, huge=True))
            else:
                streamed = verify_document_stream(source)
                if streamed is None:
                    print(json.dumps({"error": "the stream path stepped aside"}))
                    return 1
                verdict = streamed
        valid = verdict.valid
    seconds = time.perf_counter() - started
    rss = peak_rss_mb(os.getpid())
    print(json.dumps({"seconds": seconds, "valid": valid, "rss_mb": rss}))
    return 0


def measure(mode: str, path: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.dsig_stream", "--child", mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def write_signed(tmp: Path, notifications: int) -> Path:
    from lxml import etree

    from app.core.xmlparse import parse_xml
    from app.dev.devpki import dev_pki
    from app.dev.sample import build_sample, wrap_in_msghead
    from app.security.xmldsig import sign_document

    now = datetime.now(UTC).replace(microsecond=0)
    head = wrap_in_msghead(
        build_sample(notifications, "0301", seed=1), 8000001, 131725, str(uuid.uuid4()), now
    )
    signed = sign_document(parse_xml(head, huge=True), dev_pki(now).municipality.signing)
    path = tmp / "msghead.xml"
    path.write_bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dsig_stream", description=__doc__)
    parser.add_argument("--notifications", type=int, default=100_000)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, file = args.child
        if mode not in MODES:
            parser.error(f"mode must be one of {MODES}")
        return child(mode, Path(file))
    if args.notifications < 1:
        parser.error("--notifications must be positive")
    tmp = Path(tempfile.mkdtemp(prefix="kpr-bench-dsig-"))
    try:
        t0 = time.perf_counter()
        path = write_signed(tmp, args.notifications)
        size = path.stat().st_size
        print(
            f"signed MsgHead: {args.notifications} notifications, {size / 1e6:.1f} MB, "
            f"built in {time.perf_counter() - t0:.1f} s\n"
        )
        results = {mode: measure(mode, path) for mode in MODES}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{'path':<10} {'seconds':>9} {'peak RSS MB':>12} {'valid':>6}")
    for mode, r in results.items():
        rss = r.get("rss_mb")
        rss_text = f"{float(str(rss)):.0f}" if rss is not None else "?"
        print(f"{mode:<10} {float(str(r['seconds'])):>9.2f} {rss_text:>12} {r['valid']!s:>6}")
    tree, stream = results["tree"], results["stream"]
    seconds = ratio(float(str(stream["seconds"])), float(str(tree["seconds"])))
    print(f"\nratio stream / tree: {seconds:.2f} x the seconds", end="")
    if tree.get("rss_mb") is not None and stream.get("rss_mb") is not None:
        rss_ratio = ratio(float(str(stream["rss_mb"])), float(str(tree["rss_mb"])))
        print(f", {rss_ratio:.2f} x the peak RSS")
    else:
        print()
    if tree["valid"] is not True or stream["valid"] is not True:
        print("the verdicts are not both valid")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
