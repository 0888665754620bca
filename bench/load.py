"""Issue 11's load benchmarks, through real `kpr-mottak serve --workers N` processes.

    python -m bench.load small      [--seconds 30] [--clients 16] [--workers N] [--postgres URL]
    python -m bench.load responsive [--notifications 100000] [--workers N]
    python -m bench.load deadline   [--parties 356] [--notifications 5000] [--window 600]
    python -m bench.load history    [--history 5000000] [--seconds 30] [--postgres URL]

Every subcommand takes `--quick` (a short run with small sizes, for a smoke test or a busy
machine) and prints one table with a reference measured in the same run:

- small: 1- to 10-notification messages (signed, encrypted) from 16 concurrent clients, each one
  municipality's EPJ sending its løpenummer chain in order, for `--seconds`; messages/s and
  p50/p99, against the crypto floor: `openssl speed -seconds 3 rsa2048` private-key
  operations per second per core x the cores this process may use, divided by the three
  private-key operations a message costs the server (CMS decryption of the payload, the
  AppRec's CMS signature, the reply envelope's XML-DSig signature).
- responsive: p50/p99 of `GET /healthz` (every 20 ms) and of small messages (two clients in
  turn) while one large message (`--notifications`) is in progress, against the same probes
  on the idle server just before.
- deadline: `--parties` municipalities, each its own registered party with its own key and
  certificates (issued by the dev CA) and its own løpenummer chain, each posting one message
  of `--notifications` notifications, arrivals spread evenly over `--window` seconds; every
  message answered? none lost (stored messages and notifications counted in the database)?
  p50/p99 against the 5 s target, the wall time against the window, the server's CPU seconds
  and peak RSS. PostgreSQL: a throw-away cluster (bench/pgcluster.py) unless `--postgres` or
  `--sqlite`.
- history: `small` on the empty database, then again after `--history` notifications of
  history (with their brukerNr pairs) are bulk-loaded for the same municipalities with one
  `INSERT ... SELECT` (generate_series on PostgreSQL, a recursive CTE on SQLite); the ratio of
  the per-message figures says whether the cost grows with the history.

Messages are built before the clock starts. The load generator (httpx) runs in this process
and shares the machine's cores with the server, the same way in every run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.content.model import EMPTY_GUID
from app.dev.client import SendOptions, build_epj_message, read_reply
from app.dev.sample import build_sample, wrap_in_msghead
from app.ebxml.build import BuiltMessage
from app.security.keys import KeyPair, load_certificate, load_key_pair
from bench import percentile, ratio
from bench.intake import (
    FIRST_HER,
    KOMMUNER,
    PILOT_HER,
    ROOT,
    _kpr_mottak,
    database,
    dev_setup,
    free_port,
    last_guid,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
PRIVATE_KEY_OPS_PER_MESSAGE = 3  # CMS decrypt, AppRec CMS signature, envelope signature


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


# --- the crypto floor -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Floor:
    sign_per_core: float  # RSA-2048 private-key operations per second, one core
    cores: int

    @property
    def messages_per_second(self) -> float:
        return self.sign_per_core * self.cores / PRIVATE_KEY_OPS_PER_MESSAGE


_RSA_LINE = re.compile(r"^rsa\s+2048\s+bits\s+(.*)$", re.M)


def parse_openssl_speed(output: str) -> float:
    """sign/s of `openssl speed rsa2048` (OpenSSL 1.1 and 3 print times, then rates)."""
    m = _RSA_LINE.search(output)
    if m is None:
        raise ValueError("no 'rsa 2048 bits' line in openssl speed's output")
    rates = [float(t) for t in m.group(1).split() if not t.endswith("s")]
    if not rates:
        raise ValueError("no rates on the rsa 2048 line")
    return rates[0]


def crypto_floor(seconds: int) -> Floor | None:
    if shutil.which("openssl") is None:
        return None
    done = subprocess.run(
        ["openssl", "speed", "-seconds", str(seconds), "rsa2048"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return Floor(parse_openssl_speed(done.stdout), cores())
    except ValueError:
        return None


# --- a served instance and its processes ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Served:
    url: str
    pid: int  # the supervisor (or the one process with --workers 1)


def _family(pid: int) -> list[int]:
    """pid and its descendants (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [pid], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found.extend(kids)
        todo.extend(kids)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of pid and its live descendants."""
    total = 0
    for p in _family(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    """The largest VmHWM among pid and its descendants, in MB."""
    peak = 0.0
    for p in _family(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
    return peak


@contextlib.contextmanager
def serve(env: dict[str, str], log: Path, workers: int, timeout: float = 90.0) -> Iterator[Served]:
    """`kpr-mottak serve --workers N` on a free port, once /readyz answers 200."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [*_kpr_mottak(), "serve", "--port", str(port), "--workers", str(workers)]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited ({proc.returncode}); see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve not ready after {timeout:.0f} s; see {log}")
            time.sleep(0.2)
        yield Served(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- senders and their messages ---------------------------------------------------------------


@dataclass
class Sender:
    """One municipality's EPJ: its HER-id, kommune, keys, and where its chain stands."""

    her: int
    kommune: str
    signing: KeyPair
    encryption: KeyPair
    next_lopenr: int = 1
    previous_guid: str = EMPTY_GUID

    def message(
        self, notifications: int, seed: int, encrypt_to: x509.Certificate, *, gzip: bool = False
    ) -> BuiltMessage:
        melding = build_sample(
            notifications,
            self.kommune,
            seed=seed,
            start_lopenr=self.next_lopenr,
            previous_guid=self.previous_guid,
        )
        self.next_lopenr += notifications
        self.previous_guid = last_guid(melding)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        head = wrap_in_msghead(melding, self.her, int(PILOT_HER), str(uuid.uuid4()), now)
        return build_epj_message(
            head,
            SendOptions(from_her=str(self.her), gzip=gzip),
            signing=self.signing,
            encrypt_to=encrypt_to,
        )


def _pair(pki_dir: Path, name: str) -> KeyPair:
    return load_key_pair(
        (pki_dir / f"{name}.key").read_bytes(), (pki_dir / f"{name}.crt").read_bytes()
    )


def demo_senders(db_url: str, pki_dir: Path, count: int) -> list[Sender]:
    """`count` (<= 16) demo municipalities sharing the dev PKI's municipality keys."""
    from bench.intake import _register_senders

    asyncio.run(_register_senders(db_url, pki_dir, count))
    signing, encryption = (
        _pair(pki_dir, "municipality-signing"),
        _pair(pki_dir, "municipality-encryption"),
    )
    return [Sender(FIRST_HER + k, KOMMUNER[k], signing, encryption) for k in range(count)]


_PURPOSES: tuple[Literal["signing"], Literal["encryption"]] = ("signing", "encryption")


def own_senders(db_url: str, pki_dir: Path, count: int) -> list[Sender]:
    """`count` municipalities, each a registered party with its own RSA key and its own
    signing and encryption certificates from the dev CA (HER 9100000 + i, kommune 3000 + i)."""
    from app.dev.devpki import issue_certificate
    from app.identifiers import synthetic_orgnr
    from app.parties import repository as party_repo
    from app.parties.spec import certificate_spec, make_party

    ca = _pair(pki_dir, "ca")
    now = dt.datetime.now(dt.UTC)
    rng = random.Random(356)
    senders: list[Sender] = []
    specs = []
    for i in range(count):
        her, kommune, orgnr = 9_100_000 + i, f"{3000 + i:04d}", synthetic_orgnr(rng)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pairs = [
            issue_certificate(
                ca,
                common_name=f"Kommune {kommune}",
                orgnr=orgnr,
                purpose=purpose,
                not_before=now - dt.timedelta(days=1),
                not_after=now + dt.timedelta(days=30),
                key=key,
            )
            for purpose in _PURPOSES
        ]
        pem = [p.certificate.public_bytes(serialization.Encoding.PEM) for p in pairs]
        specs.append(
            make_party(
                her,
                f"Kommune {kommune}",
                orgnr,
                [kommune],
                ["post@kommune.example"],
                certificates=(
                    certificate_spec(pem[0], "signing"),
                    certificate_spec(pem[1], "encryption"),
                ),
                source="bench",
            )
        )
        senders.append(Sender(her, kommune, pairs[0], pairs[1]))

    async def register() -> None:
        from app.platform.db import create_engine, session_factory

        engine = create_engine(db_url)
        try:
            async with session_factory(engine)() as session:
                for spec in specs:
                    await party_repo.upsert_party(session, spec)
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(register())
    return senders


# --- load -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    sender: Sender
    message: BuiltMessage
    status: int
    content_type: str
    body: bytes
    seconds: float
    started: float  # perf_counter at the POST


async def post(client: httpx.AsyncClient, sender: Sender, message: BuiltMessage) -> Sent:
    t0 = time.perf_counter()
    r = await client.post("/ebms", content=message.body, headers=message.http_headers)
    return Sent(
        sender,
        message,
        r.status_code,
        r.headers.get("content-type", ""),
        r.content,
        time.perf_counter() - t0,
        t0,
    )


def outcome(sent: Sent) -> str:
    """`apprec <status>`, `message_error <codes>` or `http <n>`."""
    from app.apprec.parse import parse_apprec

    if sent.status != 200:
        return f"http {sent.status}"
    reply = read_reply(sent.body, sent.content_type, decryption=(sent.sender.encryption,))
    if reply.header is None:
        return "unreadable reply"
    if reply.header.errors:
        return "message_error " + ",".join(sorted({e.error_code for e in reply.header.errors}))
    if reply.apprec is None:
        return f"{reply.header.action} without AppRec"
    return f"apprec {parse_apprec(reply.apprec).status}"


async def clients_for(
    url: str, queues: Sequence[Sequence[tuple[Sender, BuiltMessage]]], seconds: float
) -> tuple[list[Sent], float]:
    """One client per queue, each posting its queue in order until `seconds` have passed."""
    done: list[Sent] = []
    limits = httpx.Limits(max_connections=len(queues), max_keepalive_connections=len(queues))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=600) as client:
        start = time.perf_counter()

        async def run(queue: Sequence[tuple[Sender, BuiltMessage]]) -> None:
            for sender, message in queue:
                if time.perf_counter() - start > seconds:
                    return
                done.append(await post(client, sender, message))

        await asyncio.gather(*(run(q) for q in queues))
        wall = time.perf_counter() - start
    return done, wall


def small_queues(
    senders: Sequence[Sender], per_client: int, encrypt_to: x509.Certificate, seed: int
) -> list[list[tuple[Sender, BuiltMessage]]]:
    """Per sender, `per_client` messages of 1..10 notifications continuing its chain."""
    rng = random.Random(seed)
    return [
        [
            (s, s.message(rng.randint(1, 10), seed * 1_000_000 + k * 10_000 + i, encrypt_to))
            for i in range(per_client)
        ]
        for k, s in enumerate(senders)
    ]


@dataclass(frozen=True, slots=True)
class Figures:
    count: int
    per_second: float
    p50_ms: float
    p99_ms: float
    outcomes: Counter[str] = field(default_factory=Counter)


def figures(sent: Sequence[Sent], wall: float, *, check: bool = True) -> Figures:
    lat = [s.seconds for s in sent] or [0.0]
    return Figures(
        len(sent),
        len(sent) / wall if wall else 0.0,
        percentile(lat, 50) * 1000,
        percentile(lat, 99) * 1000,
        Counter(outcome(s) for s in sent) if check else Counter(),
    )


def _print_outcomes(name: str, f: Figures) -> None:
    print(f"{name} outcomes: " + ", ".join(f"{n} x {o}" for o, n in f.outcomes.most_common()))


# --- the subcommands --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setup:
    tmp: Path
    db_url: str
    pki_dir: Path
    env: dict[str, str]
    kpr_encryption: x509.Certificate


@contextlib.contextmanager
def setup(postgres: str | None, keep: bool, *, pg_cluster: bool = False) -> Iterator[Setup]:
    tmp = Path(tempfile.mkdtemp(prefix="kpr-bench-load-"))
    cluster = None
    try:
        if pg_cluster and postgres is None:
            from bench.pgcluster import PgCluster, pg_binaries

            bindir = pg_binaries()
            if bindir is None:
                raise SystemExit("PostgreSQL server binaries not found; use --postgres or --sqlite")
            cluster = PgCluster(bindir)
            cluster.start()
            postgres = cluster.url
        with database(tmp, postgres) as db_url:
            pki_dir = tmp / "pki"
            env = dev_setup(db_url, pki_dir)
            env["KPR_LOG_LEVEL"] = os.environ.get("KPR_BENCH_LOG_LEVEL", "warning")
            kpr = load_certificate((pki_dir / "kpr-encryption.crt").read_bytes())
            yield Setup(tmp, db_url, pki_dir, env, kpr)
    finally:
        if cluster is not None:
            cluster.destroy()
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _small_run(
    s: Setup, senders: list[Sender], workers: int, seconds: float, per_client: int, seed: int
) -> Figures:
    warm = small_queues(senders, 1, s.kpr_encryption, seed)
    queues = small_queues(senders, per_client, s.kpr_encryption, seed + 1)
    with serve(s.env, s.tmp / "serve.log", workers) as served:
        asyncio.run(clients_for(served.url, warm, 600))
        sent, wall = asyncio.run(clients_for(served.url, queues, seconds))
    return figures(sent, wall)


def cmd_small(args: argparse.Namespace) -> int:
    floor = crypto_floor(1 if args.quick else 3)
    seconds = 5.0 if args.quick else args.seconds
    per_client = 12 if args.quick else args.per_client
    with setup(args.postgres, args.keep) as s:
        senders = demo_senders(s.db_url, s.pki_dir, min(args.clients, len(KOMMUNER)))
        ours = _small_run(s, senders, args.workers, seconds, per_client, seed=1)
    db = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"\nsmall: {len(senders)} clients, 1-10 notifications, {args.workers} workers, {db}, "
        f"{cores()} cores, python {sys.version.split()[0]}\n"
    )
    print(f"{'what':<34} {'msgs':>6} {'msgs/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    print(
        f"{'kpr-mottak':<34} {ours.count:>6} {ours.per_second:>8.1f} {ours.p50_ms:>8.0f} "
        f"{ours.p99_ms:>8.0f}"
    )
    if floor is not None:
        print(
            f"{'crypto floor (openssl speed)':<34} {'':>6} {floor.messages_per_second:>8.1f}"
            f"   ({floor.sign_per_core:.0f} RSA-2048 signs/s/core x {floor.cores} / "
            f"{PRIVATE_KEY_OPS_PER_MESSAGE})"
        )
        print(
            f"{'ratio':<34} {'':>6} {ratio(ours.per_second, floor.messages_per_second):>8.3f}"
            "   (target >= 0.5)"
        )
    _print_outcomes("kpr-mottak", ours)
    return 0


def cmd_responsive(args: argparse.Namespace) -> int:
    notifications = 20_000 if args.quick else args.notifications
    with setup(args.postgres, args.keep) as s:
        senders = demo_senders(s.db_url, s.pki_dir, 3)
        large_sender, small_senders = senders[0], senders[1:]
        large = large_sender.message(notifications, 7, s.kpr_encryption, gzip=True)
        smalls = small_queues(small_senders, 400, s.kpr_encryption, seed=5)
        warm = small_queues(small_senders, 1, s.kpr_encryption, seed=4)
        with serve(s.env, s.tmp / "serve.log", args.workers) as served:
            asyncio.run(clients_for(served.url, warm, 600))
            idle, during, large_sent = asyncio.run(
                _probe(served.url, large_sender, large, smalls, idle_seconds=3.0)
            )
    print(
        f"\nresponsiveness: one message of {notifications} notifications "
        f"({len(large.body) / 1e6:.1f} MB on the wire) took {large_sent.seconds:.1f} s "
        f"({outcome(large_sent)}); {args.workers} workers, "
        f"{'PostgreSQL' if args.postgres else 'SQLite'}, {cores()} cores\n"
    )
    print(f"{'probe':<22} {'n idle':>7} {'p50 idle':>9} {'p99 idle':>9} {'n during':>9}"
          f" {'p50 during':>11} {'p99 during':>11} {'p99 ratio':>10}")  # fmt: skip
    for name in ("healthz", "small message"):
        a, b = idle[name], during[name]
        pa, pb = _p(a, 50), _p(b, 50)
        qa, qb = _p(a, 99), _p(b, 99)
        print(
            f"{name:<22} {len(a):>7} {pa:>9.1f} {qa:>9.1f} {len(b):>9} {pb:>11.1f} {qb:>11.1f} "
            f"{ratio(qb, qa):>10.1f}"
        )
    print("(ms; target: /healthz p99 < 50 ms during the large message)")
    return 0


def _p(values: Sequence[float], q: float) -> float:
    return percentile(values, q) * 1000 if values else float("nan")


async def _probe(
    url: str,
    large_sender: Sender,
    large: BuiltMessage,
    smalls: Sequence[Sequence[tuple[Sender, BuiltMessage]]],
    idle_seconds: float,
) -> tuple[dict[str, list[float]], dict[str, list[float]], Sent]:
    """/healthz every 20 ms and small messages in turn: first on the idle server, then while
    the large message is in progress."""
    queue = [m for q in zip(*smalls, strict=False) for m in q]
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def probes(stop: Callable[[], bool]) -> dict[str, list[float]]:
            seen: dict[str, list[float]] = {"healthz": [], "small message": []}

            async def health() -> None:
                while not stop():
                    t0 = time.perf_counter()
                    await client.get("/healthz")
                    seen["healthz"].append(time.perf_counter() - t0)
                    await asyncio.sleep(0.02)

            async def small() -> None:
                while not stop() and queue:
                    sender, message = queue.pop(0)
                    sent = await post(client, sender, message)
                    # started in the phase: counted in it, however long it waited
                    seen["small message"].append(sent.seconds)

            await asyncio.gather(health(), small())
            return seen

        until = time.perf_counter() + idle_seconds
        idle = await probes(lambda: time.perf_counter() > until)
        task: asyncio.Task[Sent] = asyncio.create_task(post(client, large_sender, large))
        await asyncio.sleep(0.5)  # the upload; then the server works on it
        during = await probes(task.done)
        return idle, during, await task


def cmd_deadline(args: argparse.Namespace) -> int:
    parties = 8 if args.quick else args.parties
    notifications = 500 if args.quick else args.notifications
    window = 20.0 if args.quick else args.window
    postgres = None if args.sqlite else args.postgres
    with setup(postgres, args.keep, pg_cluster=not args.sqlite) as s:
        t0 = time.perf_counter()
        senders = own_senders(s.db_url, s.pki_dir, parties)
        messages = [
            sd.message(notifications, 1000 + i, s.kpr_encryption, gzip=True)
            for i, sd in enumerate(senders)
        ]
        print(
            f"{parties} parties registered and their messages built in "
            f"{time.perf_counter() - t0:.0f} s "
            f"({sum(len(m.body) for m in messages) / 1e6:.1f} MB on the wire)"
        )
        with serve(s.env, s.tmp / "serve.log", args.workers) as served:
            cpu0 = cpu_seconds(served.pid)
            sent, wall = asyncio.run(_arrivals(served.url, senders, messages, window))
            cpu = cpu_seconds(served.pid) - cpu0
            rss = peak_rss_mb(served.pid)
        stored = asyncio.run(_count_stored(s.db_url))
    f = figures(sent, wall)
    answered = sum(n for o, n in f.outcomes.items() if o.startswith("apprec"))
    print(
        f"\ndeadline day: {parties} municipalities x {notifications} notifications, arrivals over "
        f"{window:.0f} s, {args.workers} workers, {'SQLite' if args.sqlite else 'PostgreSQL'}, "
        f"{cores()} cores\n"
    )
    print(f"{'what':<40} {'value':>12} {'reference':>12} {'ratio':>8}")
    print(f"{'messages answered with an AppRec':<40} {answered:>12} {parties:>12} "
          f"{ratio(answered, parties):>8.3f}")  # fmt: skip
    print(
        f"{'messages stored':<40} {stored[0]:>12} {parties:>12} {ratio(stored[0], parties):>8.3f}"
    )
    expected = parties * notifications
    print(f"{'notifications stored':<40} {stored[1]:>12} {expected:>12} "
          f"{ratio(stored[1], expected):>8.3f}")  # fmt: skip
    print(f"{'p50 s':<40} {f.p50_ms / 1000:>12.2f} {5.0:>12.2f} {f.p50_ms / 5000:>8.2f}")
    print(f"{'p99 s (target < 5 s)':<40} {f.p99_ms / 1000:>12.2f} {5.0:>12.2f} "
          f"{f.p99_ms / 5000:>8.2f}")  # fmt: skip
    print(f"{'wall s, first POST to last reply':<40} {wall:>12.1f} {window:>12.1f} "
          f"{ratio(wall, window):>8.2f}")  # fmt: skip
    print(f"{'server CPU s (all workers)':<40} {cpu:>12.1f} {wall * cores():>12.1f} "
          f"{ratio(cpu, wall * cores()):>8.2f}   (of all cores' time)")  # fmt: skip
    print(f"{'server peak RSS MB (largest worker)':<40} {rss:>12.0f}")
    _print_outcomes("deadline", f)
    return 0


async def _arrivals(
    url: str, senders: Sequence[Sender], messages: Sequence[BuiltMessage], window: float
) -> tuple[list[Sent], float]:
    """Message i posted at i * window / n seconds, each on its own connection."""
    n = len(messages)
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=1800) as client:
        start = time.perf_counter()

        async def one(i: int) -> Sent:
            await asyncio.sleep(i * window / n)
            return await post(client, senders[i], messages[i])

        sent = await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - start
    return list(sent), wall


async def _count_stored(db_url: str) -> tuple[int, int]:
    from sqlalchemy import text

    from app.platform.db import create_engine

    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            messages: int = (
                await conn.execute(text("SELECT count(*) FROM message WHERE status = 'OK'"))
            ).scalar_one()
            notifications: int = (
                await conn.execute(text("SELECT count(*) FROM iplos_notification"))
            ).scalar_one()
            return int(messages), int(notifications)
    finally:
        await engine.dispose()


def cmd_history(args: argparse.Namespace) -> int:
    history = 200_000 if args.quick else args.history
    seconds = 5.0 if args.quick else args.seconds
    per_client = 12 if args.quick else args.per_client
    with setup(args.postgres, args.keep) as s:
        senders = demo_senders(s.db_url, s.pki_dir, min(args.clients, len(KOMMUNER)))
        empty = _small_run(s, senders, args.workers, seconds, per_client, seed=1)
        t0 = time.perf_counter()
        asyncio.run(seed_history(s.db_url, [sd.kommune for sd in senders], history))
        seeded_s = time.perf_counter() - t0
        full = _small_run(s, senders, args.workers, seconds, per_client, seed=3)
    db = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"\nhistory: {history} notifications bulk-loaded in {seeded_s:.0f} s for "
        f"{len(senders)} municipalities; small messages, {args.workers} workers, {db}, "
        f"{cores()} cores\n"
    )
    print(f"{'history':<26} {'msgs':>6} {'msgs/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, f in (("empty", empty), (f"{history} notifications", full)):
        print(f"{name:<26} {f.count:>6} {f.per_second:>8.1f} {f.p50_ms:>8.0f} {f.p99_ms:>8.0f}")
    print(
        f"{'ratio (full / empty)':<26} {'':>6} {ratio(full.per_second, empty.per_second):>8.3f} "
        f"{ratio(full.p50_ms, empty.p50_ms):>8.2f} {ratio(full.p99_ms, empty.p99_ms):>8.2f}"
        "   (target: within 10 %)"
    )
    _print_outcomes("empty", empty)
    _print_outcomes("full", full)
    return 0


async def seed_history(db_url: str, kommuner: Sequence[str], count: int) -> None:
    """`count` stored notifications (and one brukerNr pair per notification) spread over
    `kommuner` in the pilot environment, attached to the first stored message, with GUIDs and
    løpenummer (from 10^12 up) that no benchmark message uses. One INSERT ... SELECT each."""
    from sqlalchemy import text

    from app.platform.db import create_engine

    engine = create_engine(db_url)
    pg = not db_url.startswith("sqlite")
    k = len(kommuner)
    kommune_case = "CASE " + " ".join(
        f"WHEN i % {k} = {j} THEN '{nr}'" for j, nr in enumerate(kommuner)
    ) + " END"  # fmt: skip
    if pg:
        series = f"generate_series(1, {count}) AS s(i)"
        guid = "'00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0')"
        prefix, cte = "", ""
    else:
        series = "s"
        guid = "printf('00000000-0000-4000-8000-%012x', i)"
        prefix = (
            f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {count}) "
        )
        cte = prefix
    try:
        async with engine.begin() as conn:
            message_id: int = (await conn.execute(text("SELECT min(id) FROM message"))).scalar_one()
            await conn.execute(
                text(
                    f"{cte}INSERT INTO iplos_notification (message_id, environment, kommune_nr, "
                    "guid, status, lopenr, forrige_guid, ref, bruker_nr, content_sha256) "
                    f"SELECT {int(message_id)}, 'pilot', {kommune_case}, {guid}, 'N', "
                    f"1000000000000 + i, '{EMPTY_GUID}', NULL, 'hist' || i, "
                    f"'{'0' * 64}' FROM {series}"
                )
            )
            await conn.execute(
                text(
                    f"{cte}INSERT INTO iplos_bruker (environment, kommune_nr, bruker_nr, fid, "
                    f"updated_at) SELECT 'pilot', {kommune_case}, 'hist' || i, "
                    f"substr('0000000000' || i, -11, 11), CURRENT_TIMESTAMP FROM {series}"
                    if not pg
                    else "INSERT INTO iplos_bruker (environment, kommune_nr, bruker_nr, fid, "
                    f"updated_at) SELECT 'pilot', {kommune_case}, 'hist' || i, "
                    f"lpad(i::text, 11, '0'), now() FROM {series}"
                )
            )
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


# --- command line -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {}

    def add(
        name: str, run: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--quick", action="store_true", help="a short run with small sizes")
        p.add_argument("--workers", type=int, default=cores(), help="serve --workers")
        p.add_argument("--postgres", metavar="ADMIN_URL", help="a throw-away database there")
        p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, db)")
        commands[name] = run
        return p

    p = add("small", cmd_small, "small messages from 16 clients vs the crypto floor")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--per-client", type=int, default=120, help="messages built per client")
    p = add("responsive", cmd_responsive, "/healthz and small messages during a large one")
    p.add_argument("--notifications", type=int, default=100_000)
    p = add("deadline", cmd_deadline, "N municipalities, one large message each")
    p.add_argument("--parties", type=int, default=356)
    p.add_argument("--notifications", type=int, default=5000)
    p.add_argument("--window", type=float, default=600.0, help="arrivals spread over seconds")
    p.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    p = add("history", cmd_history, "small messages with a large stored history vs empty")
    p.add_argument("--history", type=int, default=5_000_000)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--per-client", type=int, default=120, help="messages built per client")
    args = parser.parse_args(argv)
    return commands[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
