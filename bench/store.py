"""The intake's store steps for one large message, each timed alone, in process (issue 19).

    python -m bench.store [--notifications 100000] [--postgres ADMIN_URL] [--repeat 1]

`bench.large` measures the whole POST through a real server; on a shared machine its wall
time moves by tens of percent. This one takes the content check out of the measurement: it
writes a sample Melding, checks it once (`validate_stream`, as the intake does on the
spool), and then runs, on a migrated, empty database (a SQLite file or a throw-away
PostgreSQL one), exactly the statements `store_outcome` runs for an accepted message in its
one transaction: `load_history`, `store_history` (the cross-message history), `store_melding`
(the register's rows, fids sealed), `update_episodes`, `assign_feed_seq`, and the commit.

The process's peak RSS is printed for the check and for each step (the high-water mark reset
as the step starts, so each is its own). Each step prints the
process's CPU seconds (all threads: the SQLite driver's thread too) and
its wall seconds; on PostgreSQL the server's own CPU is not in the figure. `--repeat N`
stores the same content N times into N fresh databases and prints each step's median.

The floor, measured in the same run on SQLite: the register's rows alone (N `notifikasjon`,
N `hendelse`, N `episode`, values of the same sizes, random GUIDs), built before the clock
starts and written by the driver (`sqlite3` executemany, the app's PRAGMAs, one
transaction) into the same migrated schema. Nothing the store does can cost less than
that, so it bounds what any implementation of the store adds to the intake.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from app.platform.db import SQLITE_CACHE_KIB, create_engine, session_factory
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


def peak_rss_mb() -> float:
    """This process's peak resident set so far (VmHWM, Linux), in MB; 0 elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return 0.0
    return 0.0


def reset_peak_rss() -> None:
    """Start the peak resident set (VmHWM) again from the current one (Linux 4.0 and later:
    `clear_refs` 5), so a step's peak is its own, not an earlier step's or the floor's."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


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
    url: str,
    content: ContentResult,
    protector: Protector,
    sample: Path,
    *,
    only_message: bool = False,
) -> dict[str, tuple[float, float, float]]:
    """One accepted message stored; (CPU, wall) seconds and the peak RSS in MB per step.
    `only_message`: the message row alone, committed (for the floor)."""
    with sample.open("rb") as source:
        keys = stream_history_keys(source)
    engine = create_engine(url)
    out: dict[str, tuple[float, float, float]] = {}
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
            if only_message:
                await session.commit()
                return out
            clock = _Clock(out)
            with clock("load_history"):
                before = await history.load_history(
                    session, ENVIRONMENT, [KOMMUNE], keys, protector
                )
                await history.confirm_versions(
                    session, await history.read_versions(session, ENVIRONMENT, [KOMMUNE])
                )
                del keys  # as the intake drops them before the check (some 40 MB)
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
    def __init__(self, out: dict[str, tuple[float, float, float]]) -> None:
        self._out = out
        self._name = ""

    def __call__(self, name: str) -> _Clock:
        self._name = name
        return self

    def __enter__(self) -> None:
        reset_peak_rss()
        self._cpu, self._wall = time.process_time(), time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        cpu = time.process_time() - self._cpu
        self._out[self._name] = (cpu, time.perf_counter() - self._wall, peak_rss_mb())


def floor_sqlite(path: Path, notifications: int) -> float:
    """CPU seconds of the driver alone writing the register's rows (see the docstring)."""
    import random
    import sqlite3

    rng = random.Random(19)

    def guid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128)))

    day = "2018-03-01"
    notifikasjon, hendelse, episode = [], [], []
    for i in range(1, notifications + 1):
        g, b = guid(), str(100000 + i)
        notifikasjon.append(
            (i, 1, ENVIRONMENT, KOMMUNE, i, "N", "2018-03-01T10:00:00", g, "0" * 36, str(i),
             None, g, None, i, None, None)
        )  # fmt: skip
        hendelse.append(
            (i, i, ENVIRONMENT, KOMMUNE, 1, "TjenesteStart", "13", "2018-03-01T10:00:00",
             "974778874", day, f"T{i}", guid(), None, guid(), b, "x" * 60, "f" * 64, "1",
             None, day, guid(), "fnr", "13")
        )  # fmt: skip
        episode.append(
            (ENVIRONMENT, KOMMUNE, b, f"T{i}", "f" * 64, "13", day, g, None, None,
             "974778874", "[]", "[]", "2018-03-01 10:00:00.000000")
        )  # fmt: skip
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"cache_size=-{SQLITE_CACHE_KIB}"):
        db.execute(f"PRAGMA {pragma}")
    db.execute(
        "INSERT INTO melding (id, message_id, environment, kommune_nr, received_at) "
        "SELECT 1, id, environment, kommune_nr, received_at FROM message LIMIT 1"
    )
    t0 = time.process_time()
    db.execute("BEGIN")
    for table, rows, columns in (
        ("notifikasjon", notifikasjon, None),
        ("hendelse", hendelse, None),
        ("episode", episode, "environment, kommune_nr, bruker_nr, tjeneste_id, fid_hmac, "
         "tjeneste_type, start_dato, start_notifikasjon_guid, slutt_dato, "
         "slutt_notifikasjon_guid, tjeneste_org_nr, midlertidige_stopp, utforer_endringer, "
         "updated_at"),
    ):  # fmt: skip
        names = f" ({columns})" if columns else ""
        marks = ", ".join("?" * len(rows[0]))
        db.executemany(f"INSERT INTO {table}{names} VALUES ({marks})", rows)
    db.execute("COMMIT")
    seconds = time.process_time() - t0
    db.close()
    return seconds


def report(
    runs: Sequence[dict[str, tuple[float, float, float]]],
    check_cpu: float,
    check_rss: float,
    label: str,
    floor: float | None,
) -> str:
    per: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for run in runs:
        for name, figures in run.items():
            per[name].append(figures)
    lines = [
        f"{label}, {len(runs)} run(s), medians",
        "",
        "| step | CPU s | wall s | peak RSS MB during the step |",
        "|---|---:|---:|---:|",
        f"| (content check, once) | {check_cpu:.2f} | | {check_rss:.0f} |",
    ]
    total_cpu = total_wall = 0.0
    for name in STEPS:
        cpu = statistics.median(c for c, _, _ in per[name])
        wall = statistics.median(w for _, w, _ in per[name])
        rss = max(r for _, _, r in per[name])
        total_cpu, total_wall = total_cpu + cpu, total_wall + wall
        lines.append(f"| {name} | {cpu:.2f} | {wall:.2f} | {rss:.0f} |")
    lines.append(f"| **store, all steps** | **{total_cpu:.2f}** | **{total_wall:.2f}** | |")
    if floor is not None:
        lines.append(f"| floor: the register's rows by the driver alone | {floor:.2f} | | |")
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
        checked_rss = peak_rss_mb()
        runs = []
        for i in range(args.repeat):
            run_dir = tmp / f"run{i}"
            run_dir.mkdir()
            with database(run_dir, args.postgres) as url:
                runs.append(asyncio.run(store_once(url, content, protector, sample)))
        floor = None
        if not args.postgres:  # after the store: its rows must not be in the store's RSS
            with database(tmp / "floor", None) as url:
                asyncio.run(store_once(url, content, protector, sample, only_message=True))
                floor = floor_sqlite(Path(url.split("///", 1)[1]), args.notifications)
        kind = "PostgreSQL" if args.postgres else "SQLite"
        label = f"{kind}, {args.notifications:,} notifications"
        print(report(runs, check_cpu, checked_rss, label, floor))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
