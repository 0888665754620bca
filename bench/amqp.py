"""IPLOS over AMQP 1.0 next to ebXML over HTTP, the same messages in the same run (issue 24).

    python -m bench.amqp [--messages 200] [--senders 4] [--concurrency 8]
                         [--notifications 100000] [--url amqp://guest:guest@127.0.0.1:5672]
                         [--postgres ADMIN_URL] [--keep]

Small messages (3 notifications; `--senders` municipalities in turn, each its own løpenummer
chain) are built once as MsgHeads, then protected for each transport before any clock
starts: for AMQP signed (CMS SignedData) and encrypted (EnvelopedData) the Helsenorge way by
`app.amqp.devsender`; for HTTP as an EPJ sends them (XML-DSig, CMS, a signed ebXML envelope).
Each transport gets its own fresh database and its own `uvicorn app.main:create_app` (with
`KPR_AMQP_URL` for the AMQP run). Measured: AMQP from the first send to the last AppRec taken
off the municipalities' `_async` queues; HTTP from the first POST to the last reply with
`--concurrency` clients. Then one message of `--notifications` (0: skipped) the same two ways.
Printed: messages/s and seconds per transport, the ratios AMQP / HTTP (goals: small >= 1.0x
the HTTP rate, the large message <= 1.2x the HTTP time) and every answer's outcome. Both
servers take messages up to 128 MB (`KPR_MAX_MESSAGE_BYTES`): the large one is not gzipped
over AMQP. Needs RabbitMQ with the AMQP 1.0 plugin.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.apprec.parse import parse_apprec
from app.dev.client import SendOptions, build_epj_message
from app.ebxml.build import BuiltMessage
from app.security.keys import load_certificate
from bench import ratio
from bench.amqp_peer import (
    BROKER,
    Collector,
    Outgoing,
    fresh_her_ids,
    load_encryption,
    open_apprec,
    outgoing,
    queues,
    send_all,
)
from bench.intake import (
    KOMMUNER,
    Head,
    database,
    dev_setup,
    drive,
    load_keys,
    msgheads,
    outcome,
    uvicorn_server,
)

# Both transports take the 100 000-notification message whole (about 60 MB signed and
# encrypted, under RabbitMQ's default 128 MB); the spool budget must hold one.
MAX_MESSAGE_BYTES = 128 * 1024 * 1024


Her = tuple[int, list[int]]  # KPR's HER-id, the municipalities'


@dataclass(frozen=True, slots=True)
class Measured:
    messages: int
    seconds: float
    outcomes: Counter[str]

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def _env(base: dict[str, str], **extra: str) -> dict[str, str]:
    env = dict(base)
    env.update(
        KPR_MAX_MESSAGE_BYTES=str(MAX_MESSAGE_BYTES),
        KPR_SPOOL_BUDGET_BYTES=str(4 * MAX_MESSAGE_BYTES),
        KPR_MAX_PAYLOAD_BYTES=str(MAX_MESSAGE_BYTES),
        **extra,
    )
    return env


@contextlib.contextmanager
def _server(env: dict[str, str], log: Path) -> Iterator[str]:
    with uvicorn_server("app.main:create_app", env, log, timeout=120.0) as url:
        yield url


def amqp_run(
    env: dict[str, str], log: Path, url: str, her: Her, messages: Sequence[Outgoing]
) -> Measured:
    """Send everything, wait for every answer; seconds from the first send to the last."""
    kpr, municipalities = her
    key = load_encryption(Path(env["KPR_PKI_DIR"]))
    server_env = dict(env, KPR_AMQP_URL=url, KPR_AMQP_QUEUES=str(kpr))
    with queues(url, [kpr, *municipalities]), _server(server_env, log):
        collector = Collector(url, municipalities).start()
        try:
            started = time.perf_counter()
            send_all(url, messages, kpr)
            wanted = {m.message_id for m in messages}
            if not collector.wait_for(wanted, timeout=600 + 60 * len(messages)):
                missing = len(wanted - collector.correlated())
                raise RuntimeError(f"{missing} messages got no answer over AMQP; see {log}")
        finally:
            collector.stop()
    seconds = max(a.at for a in collector.answers) - started
    outcomes: Counter[str] = Counter()
    for answer in collector.answers:
        if answer.queue.endswith("_error"):
            outcomes[f"error {answer.properties.get('errorCondition')}"] += 1
        else:
            outcomes[f"apprec {parse_apprec(open_apprec(answer.body, key)).status}"] += 1
    return Measured(len(messages), seconds, outcomes)


def http_run(
    env: dict[str, str], log: Path, built: Sequence[BuiltMessage], concurrency: int
) -> Measured:
    keys = load_keys(Path(env["KPR_PKI_DIR"]))
    with _server(env, log) as url:
        run = asyncio.run(drive(url, built, concurrency))
    outcomes = Counter(outcome(r, keys) for r in run.responses)
    return Measured(len(built), run.wall, outcomes)


def _as_http(heads: Sequence[Head], pki_dir: Path, kpr: int) -> list[BuiltMessage]:
    keys = load_keys(pki_dir)
    encrypt_to = load_certificate(keys.kpr_encryption_cert_pem)
    return [
        build_epj_message(
            h.xml,
            SendOptions(from_her=str(h.her), to_her=str(kpr)),
            signing=keys.municipality_signing,
            encrypt_to=encrypt_to,
        )
        for h in heads
    ]


def _row(name: str, m: Measured) -> str:
    return f"{name:<6} {m.messages:>8} {m.seconds:>9.2f} {m.rate:>10.1f}"


def _compare(title: str, amqp: Measured, http: Measured, goal: str) -> None:
    print(f"\n{title}")
    print(f"{'':<6} {'messages':>8} {'seconds':>9} {'msg/s':>10}")
    print(_row("AMQP", amqp))
    print(_row("HTTP", http))
    print(f"{'ratio':<6} {'':>8} {ratio(amqp.seconds, http.seconds):>9.2f}"
          f" {ratio(amqp.rate, http.rate):>10.2f}   (AMQP / HTTP; goal {goal})")  # fmt: skip
    for name, measured in (("AMQP", amqp), ("HTTP", http)):
        print(f"  {name} outcomes: " + ", ".join(f"{n} {k}" for k, n in measured.outcomes.items()))


@dataclass(frozen=True, slots=True)
class _Args:
    messages: int
    senders: int
    concurrency: int
    notifications: int
    url: str
    postgres: str | None
    keep: bool


def _parse(argv: Sequence[str] | None) -> _Args:
    parser = argparse.ArgumentParser(prog="python -m bench.amqp", description=__doc__)
    parser.add_argument("--messages", type=int, default=200, help="small messages per transport")
    parser.add_argument(
        "--senders", type=int, default=4, help=f"municipalities, 1..{len(KOMMUNER)}"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="HTTP clients")
    parser.add_argument("--notifications", type=int, default=100_000, help="the large one; 0 skips")
    parser.add_argument("--url", default=os.environ.get("KPR_BENCH_AMQP_URL", BROKER))
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="throw-away databases there")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, dbs)")
    a = parser.parse_args(argv)
    if a.messages < 1 or a.concurrency < 1 or a.notifications < 0:
        parser.error("--messages and --concurrency must be positive, --notifications >= 0")
    if not 1 <= a.senders <= len(KOMMUNER):
        parser.error(f"--senders must be 1..{len(KOMMUNER)}")
    return _Args(a.messages, a.senders, a.concurrency, a.notifications, a.url, a.postgres, a.keep)


def _transports(
    args: _Args, tmp: Path, her: Her, heads: Sequence[Head], label: str
) -> tuple[Measured, Measured]:
    """The same MsgHeads over AMQP, then over HTTP, each on its own fresh database."""
    kpr, municipalities = her
    pki_dir = tmp / "pki"
    results = []
    for transport in ("amqp", "http"):
        home = tmp / f"{label}-{transport}"
        home.mkdir()
        with database(home, args.postgres) as db_url:
            for k, municipality in enumerate(municipalities):
                env = dev_setup(
                    db_url, pki_dir, her_id=municipality, kommune=KOMMUNER[k], if_missing=True
                )
            env = _env(env, KPR_RECEIVERS=f"{kpr}=pilot")
            log = home / "server.log"
            if transport == "amqp":
                sent = [outgoing(h, pki_dir=pki_dir, to_her=kpr) for h in heads]
                results.append(amqp_run(env, log, args.url, her, sent))
            else:
                built = _as_http(heads, pki_dir, kpr)
                concurrency = min(args.concurrency, len(built))
                results.append(http_run(env, log, built, concurrency))
    return results[0], results[1]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    tmp = Path(tempfile.mkdtemp(prefix="kpr-bench-amqp-"))
    her = kpr, municipalities = fresh_her_ids(args.senders)
    try:
        senders = [(m, KOMMUNER[k]) for k, m in enumerate(municipalities)]
        heads = msgheads([3] * args.messages, senders=senders, to_her=kpr)
        amqp, http = _transports(args, tmp, her, heads, "small")
        db_kind = "PostgreSQL" if args.postgres else "SQLite"
        print(f"database {db_kind}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        _compare(
            f"{args.messages} small messages (3 notifications) from {args.senders} "
            f"municipalities, HTTP with {args.concurrency} clients",
            amqp,
            http,
            ">= 1.0 in msg/s",
        )
        if args.notifications:
            large = msgheads([args.notifications], senders=senders[:1], to_her=kpr)
            print(f"\nlarge: one MsgHead of {len(large[0].xml) / 1e6:.1f} MB")
            one = (kpr, municipalities[:1])
            amqp, http = _transports(args, tmp, one, large, "large")
            _compare(
                f"one message of {args.notifications} notifications",
                amqp,
                http,
                "<= 1.2 in seconds",
            )
        if args.keep:
            print(f"\nkept {tmp}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
