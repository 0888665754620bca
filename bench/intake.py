"""Intake throughput and latency through a real uvicorn process, next to a bare endpoint.

    python -m bench.intake [--requests 400] [--concurrency 16] [--postgres URL]

Issue 3: requests per second and p50/p99 latency for small messages (3 notifications, signed
and encrypted as an EPJ sends them) at 16 concurrent clients, through `uvicorn
app.main:create_app --factory`, and the same load against a bare ASGI endpoint
(`bench/bare_app.py`) that reads the body and returns a real reply's bytes (same size, same
content type), as ratios in one run.

Setup in a temp dir: a migrated database (SQLite by default; with `--postgres ADMIN_URL` a
throw-away database on that server, dropped afterwards), `kpr-mottak dev-pki` (the dev PKI and
the demo municipality HER 8000001 / kommune 0301). The messages are built before the clock
starts, each with its own MessageId and notification GUIDs, the løpenummer chain continuing
from one message to the next (concurrent arrival can still break the order: the outcome table
shows what the service answered). The load generator runs in this process (httpx, one
connection per client), so on a small machine it competes with the server for CPU - the same
way in both runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from app.content.model import EMPTY_GUID
from app.dev.client import SendOptions, build_epj_message, read_reply
from app.dev.sample import build_sample, wrap_in_msghead
from app.ebxml.build import BuiltMessage
from app.security.keys import KeyPair, load_certificate, load_key_pair
from bench import percentile, ratio

ROOT = Path(__file__).resolve().parent.parent
PILOT_HER = "131725"
NOTIFICATIONS = 3
# Demo senders: HER-id 8000001 + i reports for KOMMUNER[i] (the first is `dev-pki`'s own).
FIRST_HER = 8000001
KOMMUNER = (
    "0301", "1103", "4601", "5001", "1108", "3201", "3203", "3301",
    "3403", "3801", "4204", "4203", "1506", "1804", "5501", "4001",
)  # fmt: skip
_GUID_ATTR = re.compile(rb'notifikasjonGUID="([^"]+)"')


# --- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Keys:
    """The dev PKI as an EPJ holds it: its own keys, KPR's encryption certificate."""

    municipality_signing: KeyPair
    municipality_encryption: KeyPair
    kpr_encryption_cert_pem: bytes


def load_keys(pki_dir: Path) -> Keys:
    def pair(name: str) -> KeyPair:
        return load_key_pair(
            (pki_dir / f"{name}.key").read_bytes(), (pki_dir / f"{name}.crt").read_bytes()
        )

    return Keys(
        pair("municipality-signing"),
        pair("municipality-encryption"),
        (pki_dir / "kpr-encryption.crt").read_bytes(),
    )


def last_guid(melding: bytes) -> str:
    """The notifikasjonGUID of the last notification (the next message chains to it)."""
    found = _GUID_ATTR.findall(melding)
    if not found:
        raise ValueError("no notifikasjonGUID in the message")
    last: bytes = found[-1]
    return last.decode()


@dataclass(frozen=True, slots=True)
class Head:
    """A MsgHead as an EPJ writes it, before any protection."""

    xml: bytes
    msg_id: str
    her: int  # the sender's HER-id


def msgheads(
    sizes: Sequence[int],
    *,
    senders: Sequence[tuple[int, str]],
    to_her: int,
    first_seed: int = 1,
) -> list[Head]:
    """One MsgHead per size (notifications) to `to_her`, from the (HER-id, kommune) senders
    in turn (message i from sender i % len(senders)); per sender the løpenummer and the
    forrige-GUID chain continue in list order."""
    now = datetime.now(UTC).replace(microsecond=0)
    previous = [EMPTY_GUID] * len(senders)
    next_lopenr = [1] * len(senders)
    heads: list[Head] = []
    for i, size in enumerate(sizes):
        k = i % len(senders)
        her, kommune = senders[k]
        melding = build_sample(
            size,
            kommune,
            seed=first_seed + i,
            start_lopenr=next_lopenr[k],
            previous_guid=previous[k],
        )
        previous[k] = last_guid(melding)
        next_lopenr[k] += size
        msg_id = str(uuid.uuid4())
        heads.append(Head(wrap_in_msghead(melding, her, to_her, msg_id, now), msg_id, her))
    return heads


def build_messages(
    keys: Keys,
    count: int,
    *,
    senders: int = 1,
    notifications: int = NOTIFICATIONS,
    first_seed: int = 1,
) -> list[BuiltMessage]:
    """`count` distinct signed and encrypted messages to the pilot address, from `senders`
    demo municipalities in turn (`msgheads`)."""
    if not 1 <= senders <= len(KOMMUNER):
        raise ValueError(f"senders must be 1..{len(KOMMUNER)}")
    encrypt_to = load_certificate(keys.kpr_encryption_cert_pem)
    heads = msgheads(
        [notifications] * count,
        senders=[(FIRST_HER + k, KOMMUNER[k]) for k in range(senders)],
        to_her=int(PILOT_HER),
        first_seed=first_seed,
    )
    return [
        build_epj_message(
            h.xml,
            SendOptions(from_her=str(h.her)),
            signing=keys.municipality_signing,
            encrypt_to=encrypt_to,
        )
        for h in heads
    ]


# --- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def uvicorn_server(
    target: str, env: dict[str, str], log: Path, *, timeout: float = 60.0
) -> Iterator[str]:
    """`uvicorn TARGET --factory` on a free port; yields the base URL once /readyz says 200."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{target} exited ({proc.returncode}); see {log}")
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{target} not ready after {timeout:.0f} s; see {log}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- load -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes
    seconds: float


@dataclass(frozen=True, slots=True)
class Run:
    responses: tuple[Response, ...]
    wall: float

    @property
    def latencies(self) -> list[float]:
        return [r.seconds for r in self.responses]

    @property
    def rps(self) -> float:
        return len(self.responses) / self.wall if self.wall else 0.0


@dataclass(frozen=True, slots=True)
class Stats:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    mean_reply_bytes: float


def summarize(run: Run) -> Stats:
    lat = run.latencies
    return Stats(
        requests=len(lat),
        rps=run.rps,
        p50_ms=percentile(lat, 50) * 1000,
        p99_ms=percentile(lat, 99) * 1000,
        mean_reply_bytes=sum(len(r.body) for r in run.responses) / len(run.responses),
    )


async def drive(url: str, messages: Sequence[BuiltMessage], concurrency: int) -> Run:
    """Post every message with `concurrency` clients, each on its own keep-alive connection
    and sending its share in order: client w sends messages w, w + concurrency, ... (so with
    as many senders as clients each client is one municipality's EPJ)."""
    responses: list[Response] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def worker(share: Sequence[BuiltMessage]) -> None:
            for m in share:
                t0 = time.perf_counter()
                r = await client.post("/ebms", content=m.body, headers=m.http_headers)
                seconds = time.perf_counter() - t0
                responses.append(
                    Response(r.status_code, r.headers.get("content-type", ""), r.content, seconds)
                )

        start = time.perf_counter()
        await asyncio.gather(*(worker(messages[w::concurrency]) for w in range(concurrency)))
        wall = time.perf_counter() - start
    return Run(tuple(responses), wall)


def outcome(response: Response, keys: Keys) -> str:
    """What the service answered: `apprec <status>`, `message_error <codes>` or `http <n>`."""
    if response.status != 200:
        return f"http {response.status}"
    reply = read_reply(
        response.body, response.content_type, decryption=(keys.municipality_encryption,)
    )
    if reply.header is None:
        return "unreadable reply"
    if reply.header.errors:
        return "message_error " + ",".join(sorted({e.error_code for e in reply.header.errors}))
    if reply.apprec is None:
        return f"{reply.header.action} without AppRec"
    from app.apprec.parse import parse_apprec

    apprec = parse_apprec(reply.apprec)
    codes = ",".join(sorted({e.code for e in apprec.errors}))
    return f"apprec {apprec.status}" + (f" ({codes})" if codes else "")


# --- databases --------------------------------------------------------------------------------


async def _pg_admin(admin_url: str, sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@contextlib.contextmanager
def database(tmp: Path, postgres_admin: str | None) -> Iterator[str]:
    """A migrated, empty database: a SQLite file in `tmp`, or a throw-away PostgreSQL one."""
    from app import migrate

    if postgres_admin is None:
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        migrate.upgrade(url)
        yield url
        return
    from sqlalchemy.engine import make_url

    name = f"kpr_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(postgres_admin, f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_admin).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        asyncio.run(_pg_admin(postgres_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _register_senders(db_url: str, pki_dir: Path, senders: int) -> None:
    """Demo parties 2..senders with the dev PKI's municipality certificates (the first one
    is registered by `kpr-mottak dev-pki`)."""
    from app.dev import devsetup
    from app.parties import repository as party_repo
    from app.platform.db import create_engine, session_factory

    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            for k in range(1, senders):
                spec = devsetup.demo_party(pki_dir, her_id=FIRST_HER + k, kommune=KOMMUNER[k])
                await party_repo.upsert_party(session, spec)
            await session.commit()
    finally:
        await engine.dispose()


# --- the run ----------------------------------------------------------------------------------


def _kpr_env(db_url: str, pki_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPR_")}
    env.update(
        KPR_ENV="dev",
        KPR_DATABASE_URL=db_url,
        KPR_PKI_DIR=str(pki_dir),
        KPR_LOG_FORMAT="json",
    )
    return env


def dev_setup(
    db_url: str,
    pki_dir: Path,
    *,
    her_id: int | None = None,
    kommune: str = KOMMUNER[0],
    if_missing: bool = False,
) -> dict[str, str]:
    """`kpr-mottak dev-pki` (the dev PKI and the demo municipality, HER-id `her_id` or the
    default, reporting for `kommune`) for a server on `db_url`; `if_missing` keeps a PKI
    already in `pki_dir` (another party, or a second database for the same keys). Returns the
    server's environment."""
    env = _kpr_env(db_url, pki_dir)
    options = ["--kommune", kommune]
    if her_id is not None:
        options += ["--her-id", str(her_id)]
    if if_missing:
        options.append("--if-missing")
    subprocess.run(
        [*_kpr_mottak(), "dev-pki", "--dir", str(pki_dir), *options],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return env


def _kpr_mottak() -> list[str]:
    exe = Path(sys.executable).with_name("kpr-mottak")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("kpr-mottak")
    if found:
        return [found]
    return [sys.executable, "-c", "from app.cli.root import main; main()"]


def _row(name: str, s: Stats) -> str:
    return (
        f"{name:<8} {s.requests:>8} {s.rps:>10.1f} {s.p50_ms:>10.1f} {s.p99_ms:>10.1f}"
        f" {s.mean_reply_bytes:>12.0f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.intake", description=__doc__)
    parser.add_argument("--requests", type=int, default=400, help="measured requests per run")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--senders",
        type=int,
        help=f"sending municipalities, 1..{len(KOMMUNER)} (default: --concurrency, at most "
        f"{len(KOMMUNER)}); messages of one municipality serialize on its løpenummer lock",
    )
    parser.add_argument("--warmup", type=int, default=16, help="unmeasured requests first")
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        help="run the intake on a throw-away database on this PostgreSQL server, e.g. "
        "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, db)")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.warmup < 1:
        parser.error("--requests, --concurrency and --warmup must be positive")
    senders = args.senders or min(args.concurrency, len(KOMMUNER))
    if not 1 <= senders <= len(KOMMUNER):
        parser.error(f"--senders must be 1..{len(KOMMUNER)}")

    tmp = Path(tempfile.mkdtemp(prefix="kpr-bench-intake-"))
    try:
        with database(tmp, args.postgres) as db_url:
            pki_dir = tmp / "pki"
            env = dev_setup(db_url, pki_dir)
            asyncio.run(_register_senders(db_url, pki_dir, senders))
            keys = load_keys(pki_dir)
            t0 = time.perf_counter()
            messages = build_messages(keys, args.warmup + args.requests, senders=senders)
            build_s = time.perf_counter() - t0
            warm, measured = messages[: args.warmup], messages[args.warmup :]
            size = sum(len(m.body) for m in measured) / len(measured)
            print(
                f"built {len(messages)} messages ({NOTIFICATIONS} notifications, "
                f"{size:.0f} bytes on average) in {build_s:.1f} s"
            )

            with uvicorn_server("app.main:create_app", env, tmp / "intake.log") as url:
                warm_run = asyncio.run(drive(url, warm, args.concurrency))
                intake_run = asyncio.run(drive(url, measured, args.concurrency))

            # The reference reply: a real one, of median size among the warm-up's OK replies.
            ok = sorted(
                (r for r in warm_run.responses if outcome(r, keys) == "apprec 1"),
                key=lambda r: len(r.body),
            )
            if not ok:
                seen = Counter(outcome(r, keys) for r in warm_run.responses)
                raise RuntimeError(
                    f"no warm-up request got an OK AppRec ({dict(seen)}); see {tmp}/intake.log"
                )
            sample = ok[len(ok) // 2]
            reply_file = tmp / "reply.bin"
            reply_file.write_bytes(sample.body)
            bare_env = dict(os.environ)
            bare_env.update(
                BENCH_REPLY_FILE=str(reply_file), BENCH_REPLY_CONTENT_TYPE=sample.content_type
            )
            with uvicorn_server("bench.bare_app:create_app", bare_env, tmp / "bare.log") as url:
                asyncio.run(drive(url, warm, args.concurrency))
                bare_run = asyncio.run(drive(url, measured, args.concurrency))

        outcomes = Counter(outcome(r, keys) for r in intake_run.responses)
        ours, bare = summarize(intake_run), summarize(bare_run)
        db_kind = "PostgreSQL" if args.postgres else "SQLite"
        print(
            f"\n{args.requests} requests, {args.concurrency} concurrent clients, "
            f"{senders} sending municipalities, database {db_kind}, "
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n"
        )
        print(
            f"{'endpoint':<8} {'requests':>8} {'req/s':>10} {'p50 ms':>10} {'p99 ms':>10}"
            f" {'reply bytes':>12}"
        )
        print(_row("intake", ours))
        print(_row("bare", bare))
        print(
            f"{'ratio':<8} {'':>8} {ratio(ours.rps, bare.rps):>10.3f}"
            f" {ratio(ours.p50_ms, bare.p50_ms):>10.1f} {ratio(ours.p99_ms, bare.p99_ms):>10.1f}"
            "   (intake / bare)"
        )
        print("\nintake outcomes:")
        for name, n in outcomes.most_common():
            print(f"  {n:>6}  {name}")
        if args.keep:
            print(f"\nkept {tmp}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
