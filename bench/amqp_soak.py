"""Crash soak over AMQP (issue 24): `kpr-mottak amqp listen` SIGKILLed again and again while
a municipality sends through RabbitMQ, then every promise checked.

    python -m bench.amqp_soak [--kills 30] [--messages 300] [--max-seconds 900]
                              [--url amqp://guest:guest@127.0.0.1:5672] [--postgres ADMIN_URL]
                              [--report FILE]

One municipality (a fresh HER-id and queues) sends signed, encrypted MsgHeads (one in
`LARGE_EVERY` large) to a fresh KPR HER-id, paced over the kill phase; one in `RESEND_EVERY`
is a resend of an earlier MsgHead under a new AMQP message-id, as an EPJ resends a report.
Meanwhile the listener is SIGKILLed 0.2-2.5 s after each start and restarted at once: before
the inbox commit, between it and the accept, inside the intake core, between the core's commit
and the outbox, between the broker's accept of a reply and its `sent` mark. Then one listener
runs until every message is answered and the store is quiet, and it checks:
- every message got an answer on the municipality's `_async` queue, none on `_error`;
- every answer to one message, and to every message with the same MsgHead MsgId, opens to the
  same AppRec, byte for byte (a reply sent twice is the same reply: no second, different one);
- each MsgId is stored once with that AppRec (other rows for it are `DUPLICATE`), no message
  row is unfinished;
- every inbox row is `done` (one per message-id), every outbox row `sent`, one per inbox row;
- nothing is dead-lettered (`{kpr}_dl` empty) and nothing is left on `{kpr}_async`.
Exit status 0 when every check holds. A database on PostgreSQL with `--postgres` (a throw-away
database there), else SQLite in the temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.models import AmqpInbox, AmqpOutbox, Message, Receipt
from app.platform.db import create_engine, session_factory
from bench.amqp_peer import (
    BROKER,
    Collector,
    Outgoing,
    fresh_her_ids,
    load_encryption,
    open_apprec,
    outgoing,
    queue_depth,
    queues,
    send_all,
)
from bench.intake import database, dev_setup, msgheads

BIN = Path(sys.executable).parent
LARGE_EVERY = 12
LARGE_NOTIFICATIONS = 1500
RESEND_EVERY = 10
QUIET_SECONDS = 3.0  # after the last answer: late duplicates would have come by now
STARTUP_SECONDS = 120.0
SECONDS_PER_KILL = 4.0  # a start (about 2 s) and the time it works before the kill


@dataclass
class Listener:
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "kpr-mottak"), "amqp", "listen"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def started(self) -> int:
        """How many times a listener reached `amqp.started` (its receivers attaching)."""
        if not self.log.is_file():
            return 0
        return self.log.read_text("utf-8", "replace").count('"amqp.started"')

    def wait_started(self, count: int, timeout: float = STARTUP_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while self.started() < count:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the listener exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the listener did not start; see {self.log}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Plan:
    """What the municipality sends, in order: (outgoing, MsgId)."""

    messages: list[Outgoing] = field(default_factory=list)

    @property
    def by_id(self) -> dict[str, Outgoing]:
        return {m.message_id: m for m in self.messages}


def plan(count: int, pki_dir: Path, her: tuple[int, int], seed: int) -> Plan:
    kpr, municipality = her
    sizes = [LARGE_NOTIFICATIONS if i % LARGE_EVERY == LARGE_EVERY - 1 else 3 for i in range(count)]
    heads = msgheads(sizes, senders=[(municipality, "0301")], to_her=kpr, first_seed=seed)
    rng = random.Random(seed)
    built = Plan()
    for i, head in enumerate(heads):
        built.messages.append(outgoing(head, pki_dir=pki_dir, to_her=kpr))
        if i % RESEND_EVERY == RESEND_EVERY - 1:
            # an EPJ resending an earlier report: the same MsgHead, a new AMQP message
            again = heads[rng.randrange(i + 1)]
            built.messages.append(outgoing(again, pki_dir=pki_dir, to_her=kpr))
    return built


def _paced_send(url: str, messages: Sequence[Outgoing], kpr: int, seconds: float) -> None:
    """Send in small batches spread over `seconds`, so the kills land while messages flow."""
    batches = [messages[i : i + 4] for i in range(0, len(messages), 4)]
    pause = seconds / max(len(batches), 1)
    for batch in batches:
        send_all(url, batch, kpr)
        time.sleep(pause)


def _kill_phase(listener: Listener, kills: int, deadline: float, rng: random.Random) -> None:
    """Kill the running listener 0.2-2.5 s after it started (it is at work then), restart it."""
    while listener.kills < kills and time.monotonic() < deadline:
        listener.wait_started(listener.kills + 1)
        time.sleep(rng.uniform(0.2, 2.5))
        listener.kill()
        listener.start()


async def _stored(db_url: str) -> dict[str, Any]:
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            rows = (
                await session.execute(
                    select(
                        Message.msghead_msg_id,
                        Message.status,
                        Receipt.apprec_xml,
                        Message.completed_at,
                    ).outerjoin(Receipt, Receipt.message_id == Message.id)
                )
            ).all()
            inbox = Counter((await session.scalars(select(AmqpInbox.status))).all())
            outbox = Counter((await session.scalars(select(AmqpOutbox.status))).all())
            per_inbox = (
                await session.execute(
                    select(AmqpOutbox.inbox_id, func.count()).group_by(AmqpOutbox.inbox_id)
                )
            ).all()
            inbox_ids = (await session.scalars(select(AmqpInbox.amqp_message_id))).all()
    finally:
        await engine.dispose()
    return {
        "rows": rows,
        "inbox": inbox,
        "outbox": outbox,
        "outbox_per_inbox": Counter(n for _, n in per_inbox),
        "inbox_ids": list(inbox_ids),
    }


def check(
    sent: Plan, collector: Collector, stored: dict[str, Any], key: Any, depths: dict[str, int]
) -> list[str]:
    """Every promise of the module docstring; the violations, empty when all hold."""
    violations: list[str] = []
    by_id = sent.by_id
    contents: dict[str, set[bytes]] = defaultdict(set)  # by MsgId
    answered: set[str] = set()
    for answer in collector.answers:
        if answer.correlation_id not in by_id:
            violations.append(f"an answer to an unknown message {answer.correlation_id}")
            continue
        if answer.queue.endswith("_error"):
            violations.append(
                f"error {answer.properties.get('errorCondition')} for {answer.correlation_id}"
            )
            continue
        answered.add(answer.correlation_id)
        contents[by_id[answer.correlation_id].msg_id].add(open_apprec(answer.body, key))
    missing = set(by_id) - answered
    if missing:
        violations.append(f"{len(missing)} messages without an AppRec")
    for msg_id, seen in contents.items():
        if len(seen) != 1:
            violations.append(f"MsgId {msg_id}: {len(seen)} different AppRecs")
    originals: dict[str, list[bytes | None]] = defaultdict(list)
    for msg_id, status, apprec, completed in stored["rows"]:
        if completed is None:
            violations.append(f"an unfinished message row (MsgId {msg_id})")
        if status != "DUPLICATE":
            originals[msg_id].append(apprec)
    for msg_id in {m.msg_id for m in sent.messages}:
        kept = originals.get(msg_id, [])
        if len(kept) != 1:
            violations.append(f"MsgId {msg_id}: stored {len(kept)} times")
        elif contents.get(msg_id) and kept[0] not in contents[msg_id]:
            violations.append(f"MsgId {msg_id}: the stored AppRec is not the one sent")
    if sorted(stored["inbox_ids"]) != sorted(by_id):
        violations.append("the inbox does not hold exactly one row per message-id")
    if set(stored["inbox"]) != {"done"}:
        violations.append(f"inbox rows not done: {dict(stored['inbox'])}")
    if set(stored["outbox"]) != {"sent"} or set(stored["outbox_per_inbox"]) != {1}:
        violations.append(
            f"outbox: {dict(stored['outbox'])}, replies per inbox row "
            f"{dict(stored['outbox_per_inbox'])}"
        )
    violations += [f"{n} messages left on {q}" for q, n in depths.items() if n]
    return violations


def soak(
    *,
    kills: int,
    messages: int,
    max_seconds: float,
    workdir: Path,
    url: str = BROKER,
    postgres: str | None = None,
    seed: int = 1,
) -> dict[str, Any]:
    """Run the soak in `workdir`; the report (its `violations` empty when all holds)."""
    kpr, (municipality,) = fresh_her_ids()
    her = (kpr, municipality)
    rng = random.Random(seed)
    with database(workdir, postgres) as db_url, queues(url, [kpr, municipality]):
        pki_dir = workdir / "pki"
        env = dev_setup(db_url, pki_dir, her_id=municipality)
        env.update(KPR_AMQP_URL=url, KPR_AMQP_QUEUES=str(kpr), KPR_RECEIVERS=f"{kpr}=pilot")
        sent = plan(messages, pki_dir, her, seed)
        collector = Collector(url, [municipality]).start()
        listener = Listener(env, workdir / "listener.log")
        started = time.monotonic()
        listener.start()
        pace = min(max_seconds / 2, kills * SECONDS_PER_KILL)  # sending while the kills go on
        sender = threading.Thread(
            target=_paced_send, args=(url, sent.messages, kpr, pace), daemon=True
        )
        sender.start()
        try:
            deadline = started + max_seconds
            _kill_phase(listener, kills, deadline, rng)
            sender.join()
            collector.wait_for(set(sent.by_id), max(60.0, deadline - time.monotonic()))
            time.sleep(QUIET_SECONDS)
        finally:
            listener.stop()
            collector.stop()
        depths = {q: queue_depth(url, q) for q in (f"{kpr}_dl", f"{kpr}_async")}
        stored = asyncio.run(_stored(db_url))
        violations = check(sent, collector, stored, load_encryption(pki_dir), depths)
    return {
        "kills": listener.kills,
        "messages": len(sent.messages),
        "msg_ids": len({m.msg_id for m in sent.messages}),
        "answers": len(collector.answers),
        "answered_twice": len(collector.answers) - len(collector.correlated()),
        "stored_rows": len(stored["rows"]),
        # resends, and messages processed again after a kill: each answered with the stored AppRec
        "duplicate_rows": sum(1 for row in stored["rows"] if row[1] == "DUPLICATE"),
        "seconds": round(time.monotonic() - started, 1),
        "violations": violations,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.amqp_soak", description=__doc__)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--url", default=os.environ.get("KPR_BENCH_AMQP_URL", BROKER))
    parser.add_argument("--postgres", metavar="ADMIN_URL")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, db)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="kpr-amqp-soak-"))
    try:
        report = soak(
            kills=args.kills,
            messages=args.messages,
            max_seconds=args.max_seconds,
            workdir=tmp,
            url=args.url,
            postgres=args.postgres,
            seed=args.seed,
        )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.report is not None:
        args.report.write_text(text + "\n")
    return 0 if not report["violations"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
