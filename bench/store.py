"""The intake's store steps for one large message, each timed alone, in process (issue 19).

    python -m bench.store [--notifications 100000] [--postgres ADMIN_URL] [--repeat 1]

`bench.large` measures the whole POST through a real server; on a shared machine its wall
time moves by tens of percent. This one takes the content check out of the measurement: it
writes a sample Melding, checks it once (`validate_stream`, as the intake does on the
spool), and then runs, on a migrated, empty database (a SQLite file or a throw-away
PostgreSQL one), exactly the statements `store_outcome` runs for an accepted message in its
one transaction: `load_history`, `store_history` (the cross-message history), `store_melding`
(the register's rows, fids sealed), `update_episodes`, `assign_feed_seq`, and the commit.

Each step prints the process's CPU seconds (all threads: the SQLite driver's thread too) and
its wall seconds; on PostgreSQL the server's own CPU is not in the figure. `--repeat N`
stores the same content N times into N fresh databases and prints each step's median.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from app.content.iplos.stream import stream_history_keys, validate_stream
from app.content.model import ContentContext, ContentResult
from app.dev.sample import write_sample
from app.intake import history
from app.models import Message
from app.platform.db import create_engine, session_factory
from app.platform.settings import Settings
from app.register.episodes import update_episodes
from app.register.keys import load_protector
from app.register.protect import Protector
from app.register.store import MeldingRecord, assign_feed_seq, store_melding
from bench.intake import database

KOMMUNE = "0301"
ENVIRONMENT = "production"
STEPS = (
    "load_history",
    "store_history",
    "store_melding",
    "update_episodes",
    "assign_feed_seq",
    "commit",
)


def checked(path: Path, notifications: int) -> tuple[ContentResult, float]:
    """The sample's ContentResult (and the check's CPU seconds), as the intake has it."""
    with path.open("wb") as out:
        write_sample(out, notifications, KOMMUNE)
    ctx = ContentContext(
        now=datetime.now(UTC),
        allowed_kommuner=frozenset({KOMMUNE}),
        allow_synthetic=True,
        environment=ENVIRONMENT,
    )
    t0 = time.process_time()
    with path.open("rb") as source:
        result = validate_stream(source, ctx)
    return result, time.process_time() - t0


async def store_once(
    url: str, content: ContentResult, protector: Protector, sample: Path
) -> dict[str, tuple[float, float]]:
    """One accepted message stored; (CPU, wall) seconds per step."""
    with sample.open("rb") as source:
        keys = stream_history_keys(source)
    engine = create_engine(url)
    out: dict[str, tuple[float, float]] = {}
    try:
        async with session_factory(engine)() as session:
            now = datetime.now(UTC)
            message = Message(
                received_at=now,
                request_id=uuid.uuid4().hex,
                size_bytes=0,
                environment=ENVIRONMENT,
                msghead_type="KPR_IPL",
                kommune_nr=KOMMUNE,
                notification_count=len(content.notifications),
                status="OK",
                completed_at=now,
            )
            session.add(message)
            await session.flush()
            clock = _Clock(out)
            with clock("load_history"):
                before = await history.load_history(
                    session, ENVIRONMENT, [KOMMUNE], keys, protector
                )
                await history.confirm_versions(
                    session, await history.read_versions(session, ENVIRONMENT, [KOMMUNE])
                )
            with clock("store_history"):
                await history.store_history(
                    session, message.id, ENVIRONMENT, content, before, protector
                )
            record = MeldingRecord(
                message_id=message.id,
                environment=ENVIRONMENT,
                received_at=now,
                apprec_id=None,
                apprec_status="1",
                content=content,
            )
            with clock("store_melding"):
                stored = await store_melding(session, record, protector)
            with clock("update_episodes"):
                await update_episodes(session, stored.id, stored.own)
            with clock("assign_feed_seq"):
                await assign_feed_seq(session, ENVIRONMENT, stored.id)
            with clock("commit"):
                await session.commit()
    finally:
        await engine.dispose()
    return out


class _Clock:
    def __init__(self, out: dict[str, tuple[float, float]]) -> None:
        self._out = out
        self._name = ""

    def __call__(self, name: str) -> _Clock:
        self._name = name
        return self

    def __enter__(self) -> None:
        self._cpu, self._wall = time.process_time(), time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        cpu = time.process_time() - self._cpu
        self._out[self._name] = (cpu, time.perf_counter() - self._wall)


def report(runs: Sequence[dict[str, tuple[float, float]]], check_cpu: float, label: str) -> str:
    per: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for run in runs:
        for name, figures in run.items():
            per[name].append(figures)
    lines = [
        f"{label}, {len(runs)} run(s), medians",
        "",
        "| step | CPU s | wall s |",
        "|---|---:|---:|",
        f"| (content check, once) | {check_cpu:.2f} | |",
    ]
    total_cpu = total_wall = 0.0
    for name in STEPS:
        cpu = statistics.median(c for c, _ in per[name])
        wall = statistics.median(w for _, w in per[name])
        total_cpu, total_wall = total_cpu + cpu, total_wall + wall
        lines.append(f"| {name} | {cpu:.2f} | {wall:.2f} |")
    lines.append(f"| **store, all steps** | **{total_cpu:.2f}** | **{total_wall:.2f}** |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__)
    parser.add_argument("--notifications", type=int, default=100_000)
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="a throw-away database there")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kpr-bench-store-") as name:
        tmp = Path(name)
        protector = load_protector(Settings(pki_dir=tmp / "pki"))
        sample = tmp / "melding.xml"
        content, check_cpu = checked(sample, args.notifications)
        runs = []
        for i in range(args.repeat):
            run_dir = tmp / f"run{i}"
            run_dir.mkdir()
            with database(run_dir, args.postgres) as url:
                runs.append(asyncio.run(store_once(url, content, protector, sample)))
        kind = "PostgreSQL" if args.postgres else "SQLite"
        print(report(runs, check_cpu, f"{kind}, {args.notifications:,} notifications"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
