"""One large message through a real server, next to the C tools doing the same reading.

    python -m bench.large [--notifications 100000] [--postgres ADMIN_URL] [--keep]

Issue 11: a municipality's whole extraction in one message (100 000 notifications is about
55 MB of XML, 11 MB gzipped and encrypted on the wire). The message is built as an EPJ sends it
(MsgHead signed, gzipped, CMS-encrypted to KPR, ebXML envelope signed) before the clock starts
and posted once to `uvicorn app.main:create_app --factory` (a migrated SQLite database, or a
throw-away PostgreSQL one with `--postgres`). Reported: seconds from POST to reply, the AppRec
status, the server's peak RSS (VmHWM, from /proc, sampled once the reply is in) and the CPU
seconds it used during the POST (user + system, from /proc: the steadier figure on a shared
machine), and the reference measured in the same run on the same bytes: `openssl cms
-decrypt` of the payload, `gunzip`, and `xmllint --noout --stream --schema` of the content
against the project's XSD (Debian packages openssl, gzip, libxml2-utils). The ratio says how
far the service is from the cost of simply reading what it received.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
from lxml import etree

from app.apprec.parse import parse_apprec
from app.content.iplos.schema import SCHEMA_PATH
from app.dev.client import SendOptions, build_epj_message, read_reply
from app.dev.sample import build_sample, wrap_in_msghead
from app.ebxml.mime import parse_body
from app.security.keys import load_certificate
from bench.intake import FIRST_HER, PILOT_HER, database, dev_setup, load_keys, uvicorn_server

MSGHEAD_NS = "{http://www.kith.no/xmlstds/msghead/2006-05-24}"


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM of a process (Linux), in MB; None elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds a process (all its threads) has used (Linux); None
    elsewhere. On a shared machine the server's CPU during the POST moves by a few percent
    from run to run where the wall time moves by tens."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pid(port: int) -> int | None:
    """The pid listening on `port` (the uvicorn child of the context manager)."""
    found = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
    ).stdout
    marker = "pid="
    if marker not in found:
        return None
    return int(found.split(marker, 1)[1].split(",", 1)[0])


def reference_seconds(tmp: Path, payload: bytes, pki_dir: Path) -> float | None:
    """openssl cms -decrypt | gunzip, then xmllint --stream --schema on the Melding."""
    if not all(shutil.which(t) for t in ("openssl", "gunzip", "xmllint")):
        return None
    cms = tmp / "payload.p7m"
    cms.write_bytes(payload)
    started = time.perf_counter()
    decrypted = subprocess.run(
        [
            "openssl",
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            str(cms),
            "-recip",
            str(pki_dir / "kpr-encryption.crt"),
            "-inkey",
            str(pki_dir / "kpr-encryption.key"),
            "-binary",
        ],
        capture_output=True,
        check=True,
    ).stdout
    head = subprocess.run(["gunzip", "-c"], input=decrypted, capture_output=True, check=True)
    elapsed = time.perf_counter() - started
    # The content alone for xmllint (the MsgHead schema would need the IPLOS one beside it);
    # cutting it out is not timed: the service does the same inside one parse.
    root = etree.fromstring(head.stdout, parser=etree.XMLParser(huge_tree=True))
    melding = next(root.iter(f"{MSGHEAD_NS}Content"))[0]
    content = tmp / "melding.xml"
    content.write_bytes(etree.tostring(melding))
    started = time.perf_counter()
    subprocess.run(
        ["xmllint", "--noout", "--stream", "--schema", str(SCHEMA_PATH), str(content)],
        capture_output=True,
        check=True,
    )
    return elapsed + time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.large", description=__doc__)
    parser.add_argument("--notifications", type=int, default=100_000)
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="a throw-away database there")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args(argv)
    if args.notifications < 1:
        parser.error("--notifications must be positive")
    tmp = Path(tempfile.mkdtemp(prefix="kpr-bench-large-"))
    try:
        with database(tmp, args.postgres) as db_url:
            pki_dir = tmp / "pki"
            env = dev_setup(db_url, pki_dir)
            keys = load_keys(pki_dir)
            t0 = time.perf_counter()
            melding = build_sample(args.notifications, "0301", seed=1)
            head = wrap_in_msghead(
                melding,
                FIRST_HER,
                int(PILOT_HER),
                str(uuid.uuid4()),
                datetime.now(UTC).replace(microsecond=0),
            )
            built = build_epj_message(
                head,
                SendOptions(from_her=str(FIRST_HER), gzip=True),
                signing=keys.municipality_signing,
                encrypt_to=load_certificate(keys.kpr_encryption_cert_pem),
            )
            print(
                f"built one message: {args.notifications} notifications, {len(head) / 1e6:.1f} "
                f"MB of MsgHead, {len(built.body) / 1e6:.1f} MB on the wire "
                f"({len(gzip.compress(head)) / 1e6:.1f} MB gzipped) in "
                f"{time.perf_counter() - t0:.1f} s"
            )
            mime = parse_body(built.body, built.http_headers["Content-Type"], max_parts=8)
            assert mime.message is not None
            payload = next(iter(mime.message.attachment_map.values()))
            reference = reference_seconds(tmp, payload, pki_dir)

            with uvicorn_server("app.main:create_app", env, tmp / "intake.log") as url:
                port = int(url.rsplit(":", 1)[1])
                pid = server_pid(port)
                cpu_before = cpu_seconds(pid) if pid is not None else None
                started = time.perf_counter()
                response = httpx.post(
                    f"{url}/ebms", content=built.body, headers=built.http_headers, timeout=1800
                )
                seconds = time.perf_counter() - started
                rss = peak_rss_mb(pid) if pid is not None else None
                cpu_after = cpu_seconds(pid) if pid is not None else None
                cpu = (
                    cpu_after - cpu_before
                    if cpu_before is not None and cpu_after is not None
                    else None
                )
            reply = read_reply(
                response.content,
                response.headers.get("content-type", ""),
                decryption=(keys.municipality_encryption,),
            )
            status = parse_apprec(reply.apprec).status if reply.apprec else "(no AppRec)"
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")

    database_kind = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\ndatabase {database_kind}, one message, AppRec status {status}\n")
    print(f"{'what':<36} {'seconds':>9} {'peak RSS MB':>12} {'server CPU s':>13}")
    print(
        f"{'kpr-mottak (POST to reply)':<36} {seconds:>9.1f} "
        f"{(f'{rss:.0f}' if rss is not None else '?'):>12} "
        f"{(f'{cpu:.1f}' if cpu is not None else '?'):>13}"
    )
    if reference is None:
        print("reference: openssl, gunzip or xmllint missing (apt-get install openssl gzip "
              "libxml2-utils)")  # fmt: skip
        return 0
    print(f"{'openssl cms | gunzip | xmllint':<36} {reference:>9.1f}")
    print(f"{'ratio':<36} {seconds / reference:>9.1f}   (kpr-mottak / C tools)")
    print(f"per notification: {seconds / args.notifications * 1e6:.0f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
