"""Crash soak: two `kpr-mottak serve` instances on one throw-away PostgreSQL, under a steady
load of signed, encrypted messages (small and large) from several municipalities, while
instances and PostgreSQL are SIGKILLed at random moments and restarted. Then every client
observation is checked against the database.

    python -m bench.soak [--kills 100] [--max-seconds 1500] [--clients 4] [--report FILE]

Loopback only; bounded by `--kills` and `--max-seconds`. Clients behave like an MSH: a
message that got no reply, or a temporary DeliveryFailure, is sent again (same bytes) until it
is acknowledged. The checks:
- every acknowledged message is stored with the exact reply the client got, and every reply
  the client got for it (resends included) is that reply, byte for byte;
- a resend of every acknowledged message now gets that reply byte for byte;
- every message the clients gave up on, sent again now, is processed in full (acknowledged);
- nothing is half-stored (a message row without completed_at), no claim without its reply;
- never an HTTP 5xx, never a final (non-temporary) MessageError;
- every queued notification is sent (to an SMTP sink in this process), waiting out the lease
  of rows that a killed instance had claimed.
Exit status 0 when every check holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.dev.client import ReadReply, SendOptions, build_epj_message, read_reply
from app.dev.sample import build_sample, wrap_in_msghead
from app.ebxml.build import BuiltMessage
from app.models import Message, MessageDedup, NotificationOutbox, Receipt
from app.platform.db import create_engine, session_factory
from app.security.keys import KeyPair, load_certificate, load_key_pair
from bench.pgcluster import PgCluster, pg_binaries

BIN = Path(sys.executable).parent
MUNICIPALITIES = ((8000001, "0301"), (8000002, "1103"), (8000003, "4601"), (8000004, "5001"))
LARGE_EVERY = 15  # one message in this many is large
LARGE_NOTIFICATIONS = 1500
SMALL_NOTIFICATIONS = 3
STARTUP_SECONDS = 90.0
OUTBOX_WAIT_SECONDS = 900.0  # the sender's lease (30 s x 22) plus a margin


# --- processes ------------------------------------------------------------------------------


class Sink:
    """aiosmtpd handler that counts delivered emails."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SmtpServer, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.count += 1
        return "250 OK"


@dataclass
class Instance:
    name: str
    port: int
    env: dict[str, str]
    cwd: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.cwd / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(
            [str(BIN / "kpr-mottak"), "serve", "--port", str(self.port)],
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def wait_up(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The end of the instance's log, for a failure's message (it lives in a temp dir)."""
        path = self.cwd / f"{self.name}.log"
        if not path.is_file():
            return "(no log)"
        return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cli(env: dict[str, str], cwd: Path, *args: str) -> None:
    done = subprocess.run(
        [str(BIN / "kpr-mottak"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kpr-mottak {' '.join(args)}: {done.stdout}{done.stderr}")


# --- what the clients saw ---------------------------------------------------------------------


@dataclass
class Sent:
    built: BuiltMessage
    from_her: str
    replies: list[bytes] = field(default_factory=list)  # every acknowledged reply
    attempts: int = 0
    interrupted: int = 0  # no reply at all (connection reset, refused)
    transient: int = 0  # DeliveryFailure, severity Warning


@dataclass
class Tally:
    sent: list[Sent] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)


@dataclass
class Keys:
    signing: KeyPair
    encryption: KeyPair
    kpr_encryption: object

    @classmethod
    def load(cls, pki: Path) -> Keys:
        def pair(name: str) -> KeyPair:
            return load_key_pair(
                (pki / f"{name}.key").read_bytes(), (pki / f"{name}.crt").read_bytes()
            )

        kpr = load_certificate((pki / "kpr-encryption.crt").read_bytes())
        return cls(pair("municipality-signing"), pair("municipality-encryption"), kpr)


def _build(keys: Keys, seq: int, rng: random.Random) -> tuple[BuiltMessage, str]:
    her, kommune = MUNICIPALITIES[seq % len(MUNICIPALITIES)]
    n = LARGE_NOTIFICATIONS if seq % LARGE_EVERY == LARGE_EVERY - 1 else SMALL_NOTIFICATIONS
    melding = build_sample(n, kommune, seed=rng.randrange(1 << 30), start_lopenr=seq * 10_000 + 1)
    head = wrap_in_msghead(
        melding, her, 131725, f"soak-{seq}-{rng.randrange(1 << 30)}", datetime.now(UTC)
    )
    built = build_epj_message(
        head,
        SendOptions(from_her=str(her)),
        signing=keys.signing,
        encrypt_to=keys.kpr_encryption,  # type: ignore[arg-type]
    )
    return built, str(her)


def _classify(keys: Keys, response: httpx.Response) -> tuple[str, ReadReply | None]:
    if response.status_code >= 500:
        return "http_5xx", None
    if response.status_code != 200:
        return f"http_{response.status_code}", None
    reply = read_reply(
        response.content, response.headers["content-type"], decryption=(keys.encryption,)
    )
    header = reply.header
    if header is None:
        return "unreadable", reply
    if header.action == "APPREC" and header.acknowledgment is not None:
        return "acked", reply
    errors = [(e.error_code, e.severity) for e in header.errors]
    if header.action == "MessageError" and errors == [("DeliveryFailure", "Warning")]:
        return "transient", reply
    return f"message_error:{errors}", reply


async def _deliver(
    client: httpx.AsyncClient,
    urls: Sequence[str],
    keys: Keys,
    sent: Sent,
    tally: Tally,
    rng: random.Random,
    *,
    stop: asyncio.Event | None,
) -> bool:
    """Send until acknowledged (or `stop` is set while retrying); True when acknowledged."""
    while True:
        sent.attempts += 1
        url = rng.choice(urls)
        try:
            response = await client.post(
                f"{url}/ebms", content=sent.built.body, headers=sent.built.http_headers
            )
        except httpx.TransportError:
            sent.interrupted += 1
        else:
            kind, _reply = _classify(keys, response)
            if kind == "acked":
                sent.replies.append(response.content)
                return True
            if kind == "transient":
                sent.transient += 1
            else:
                tally.violations.append(f"{sent.built.message_id}: {kind}")
                return False
        if stop is not None and stop.is_set():
            return False
        await asyncio.sleep(rng.uniform(0.2, 1.0))


async def _client(
    index: int,
    urls: Sequence[str],
    keys: Keys,
    tally: Tally,
    stop: asyncio.Event,
    counter: list[int],
) -> None:
    rng = random.Random(index)
    async with httpx.AsyncClient(timeout=120.0) as client:
        while not stop.is_set():
            seq = counter[0]
            counter[0] += 1
            built, her = await asyncio.to_thread(_build, keys, seq, rng)
            sent = Sent(built, her)
            tally.sent.append(sent)
            acked = await _deliver(client, urls, keys, sent, tally, rng, stop=stop)
            if acked and rng.random() < 0.1:  # an MSH that lost the reply sends it again
                await _deliver(client, urls, keys, sent, tally, rng, stop=stop)


async def _killer(
    instances: list[Instance],
    pg: PgCluster,
    tally: Tally,
    stop: asyncio.Event,
    kills: int,
    rng: random.Random,
) -> None:
    first = ["one_instance", "both_instances", "postgresql"]  # each kind at least once
    while sum(tally.kills.values()) < kills and not stop.is_set():
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        roll = rng.random()
        if first:
            roll = {"one_instance": 0.0, "both_instances": 0.6, "postgresql": 0.9}[first.pop(0)]
        if roll < 0.5:
            target = [rng.choice(instances)]
            kind = "one_instance"
        elif roll < 0.75:
            target = list(instances)
            kind = "both_instances"
        else:
            target = []
            kind = "postgresql"
        if target:
            for inst in target:
                inst.kill()
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            for inst in target:
                inst.start()
            for inst in target:
                await asyncio.to_thread(inst.wait_up)
        else:
            await asyncio.to_thread(pg.kill)
            await asyncio.sleep(rng.uniform(0.0, 2.0))
            await asyncio.to_thread(pg.start)
        tally.kills[kind] += 1
    stop.set()


# --- the checks -------------------------------------------------------------------------------


async def _check(
    pg: PgCluster,
    urls: Sequence[str],
    keys: Keys,
    tally: Tally,
    sink: Sink,
    outbox_wait: float,
) -> dict[str, object]:
    results: dict[str, object] = {}
    rng = random.Random(99)
    async with httpx.AsyncClient(timeout=300.0) as client:
        # Messages the clients gave up on: sent again now, processed in full.
        given_up = [s for s in tally.sent if not s.replies]
        for sent in given_up:
            if not await _deliver(client, urls, keys, sent, tally, rng, stop=None):
                tally.violations.append(f"{sent.built.message_id}: not acknowledged on resend")
        results["given_up_then_acknowledged"] = len(given_up)
        # Every reply a client got for a message is one reply, byte for byte.
        for sent in tally.sent:
            if len(set(sent.replies)) > 1:
                tally.violations.append(f"{sent.built.message_id}: different replies")
        # A resend now gets it again.
        for sent in tally.sent:
            if not sent.replies:
                continue
            response = await client.post(
                f"{rng.choice(urls)}/ebms", content=sent.built.body, headers=sent.built.http_headers
            )
            if response.content != sent.replies[0]:
                tally.violations.append(f"{sent.built.message_id}: resend reply differs")
    engine = create_engine(pg.url)
    try:
        async with session_factory(engine)() as s:
            stored = {
                (row.from_party_id, row.ebms_message_id): row.message_id
                for row in (await s.execute(select(MessageDedup))).scalars()
            }
            for sent in tally.sent:
                message_id = stored.get((sent.from_her, sent.built.message_id))
                if message_id is None:
                    tally.violations.append(f"{sent.built.message_id}: acknowledged, not stored")
                    continue
                bodies = list(
                    await s.scalars(select(Receipt.body).where(Receipt.message_id == message_id))
                )
                if sent.replies and sent.replies[0] not in bodies:
                    tally.violations.append(f"{sent.built.message_id}: stored reply differs")
            unfinished = await s.scalar(
                select(func.count()).select_from(Message).where(Message.completed_at.is_(None))
            )
            claims_without_reply = await s.scalar(
                select(func.count())
                .select_from(MessageDedup)
                .where(~MessageDedup.message_id.in_(select(Receipt.message_id)))
            )
            by_status = select(Message.status, func.count()).group_by(Message.status)
            statuses = dict((await s.execute(by_status)).all())
        if unfinished:
            tally.violations.append(f"{unfinished} messages half-stored (no completed_at)")
        if claims_without_reply:
            tally.violations.append(f"{claims_without_reply} claims without a stored reply")
        results["stored_by_status"] = statuses
        results["outbox"] = await _wait_outbox(engine, tally, outbox_wait)
        results["emails_received"] = sink.count
    finally:
        await engine.dispose()
    return results


async def _wait_outbox(engine: AsyncEngine, tally: Tally, wait: float) -> dict[str, int]:
    """Wait until the outbox is sent. Rows a killed instance had claimed wait for their lease
    (up to ~11 minutes); with a shorter `wait` those still leased are counted, not failed."""
    factory = session_factory(engine)
    deadline = time.monotonic() + wait
    by_status = select(NotificationOutbox.status, func.count()).group_by(NotificationOutbox.status)
    counts: dict[str, int] = {}
    while True:
        async with factory() as s:
            counts = dict((await s.execute(by_status)).all())
            leased = await s.scalar(
                select(func.count()).where(
                    NotificationOutbox.status == "pending",
                    NotificationOutbox.next_attempt_at > datetime.now(UTC),
                    NotificationOutbox.attempts == 0,
                )
            )
        if not counts.get("pending") or time.monotonic() > deadline:
            break
        await asyncio.sleep(2.0)
    pending = counts.get("pending", 0)
    if pending and wait < OUTBOX_WAIT_SECONDS and pending == leased:
        counts["pending_leased_by_a_killed_instance"] = pending
    elif pending:
        tally.violations.append(f"{pending} notifications never sent")
    if counts.get("failed"):
        tally.violations.append(f"{counts['failed']} notifications failed")
    return counts


# --- the run ----------------------------------------------------------------------------------


async def soak(
    *,
    kills: int,
    max_seconds: float,
    clients: int,
    workdir: Path,
    seed: int,
    outbox_wait: float = OUTBOX_WAIT_SECONDS,
) -> dict[str, object]:
    bindir = pg_binaries()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    pg = PgCluster(bindir)
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    instances: list[Instance] = []
    started = time.monotonic()
    tally = Tally()
    try:
        pg.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KPR_")}
        env.update(
            KPR_ENV="test",
            KPR_DATABASE_URL=pg.url,
            KPR_PKI_DIR=str(workdir / "pki"),
            KPR_RECEIVERS="131725=pilot",
            KPR_LOG_FORMAT="json",
            KPR_SMTP_HOST="127.0.0.1",
            KPR_SMTP_PORT=str(smtp.port),
            KPR_SHUTDOWN_GRACE_SECONDS="10",
            KPR_RETENTION_INTERVAL_HOURS="0",
            KPR_CRL_CACHE_DIR=str(workdir / "crl-cache"),
        )
        _cli(env, workdir, "db", "upgrade")
        _cli(env, workdir, "dev-pki")
        for her, kommune in MUNICIPALITIES[1:]:
            _cli(
                env, workdir, "dev-pki", "--if-missing", "--her-id", str(her), "--kommune", kommune
            )
        keys = Keys.load(workdir / "pki")
        instances = [Instance(f"kpr-{i}", _free_port(), env, workdir) for i in (1, 2)]
        for inst in instances:
            inst.start()
        for inst in instances:
            inst.wait_up()
        urls = [inst.url for inst in instances]
        stop = asyncio.Event()
        counter = [0]
        rng = random.Random(seed)
        load = [
            asyncio.create_task(_client(i, urls, keys, tally, stop, counter))
            for i in range(clients)
        ]
        killer = asyncio.create_task(_killer(instances, pg, tally, stop, kills, rng))
        try:
            await asyncio.wait_for(asyncio.shield(killer), timeout=max_seconds)
        except TimeoutError:
            stop.set()
            await killer
        await asyncio.gather(*load)
        load_seconds = time.monotonic() - started
        # Everything up again (a kill may have been the last thing that happened).
        for inst in instances:
            if inst.proc is None or inst.proc.poll() is not None:
                inst.start()
                inst.wait_up()
        checks = await _check(pg, urls, keys, tally, sink, outbox_wait)
    finally:
        for inst in instances:
            inst.stop()
        smtp.stop()
        pg.destroy()
    acked = sum(1 for s in tally.sent if s.replies)
    return {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "kills": dict(tally.kills),
        "kills_total": sum(tally.kills.values()),
        "messages": len(tally.sent),
        "large_messages": sum(1 for s in tally.sent if len(s.built.body) > 100_000),
        "acknowledged": acked,
        "attempts": sum(s.attempts for s in tally.sent),
        "interrupted_attempts": sum(s.interrupted for s in tally.sent),
        "delivery_failures": sum(s.transient for s in tally.sent),
        "load_seconds": round(load_seconds, 1),
        "total_seconds": round(time.monotonic() - started, 1),
        **checks,
        "violations": tally.violations[:50],
        "violation_count": len(tally.violations),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=1500.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--report", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kpr-soak-") as tmp:
        report = asyncio.run(
            soak(
                kills=args.kills,
                max_seconds=args.max_seconds,
                clients=args.clients,
                workdir=Path(tmp),
                seed=args.seed,
            )
        )
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text + "\n")
    return 0 if report["violation_count"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
