"""The SQLite writer lock: writers of several processes take turns on a flock beside the
database, and a writer cancelled while it waits leaves no lock behind."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

from app.platform.sqlite_writer import SqliteWriter, for_database

# a deadlock fails the test instead of hanging it (not a speed limit)
LIVENESS_SECONDS = 60


def _note(journal: str, line: str) -> None:
    with open(journal, "a") as f:
        f.write(line + "\n")


def _take_turns(
    lock_path: str, journal: str, name: str, rounds: int, start: Any | None = None
) -> None:
    if start is not None:
        start.wait()  # all processes write at once

    async def run() -> None:
        writer = SqliteWriter(Path(lock_path))
        for _ in range(rounds):
            async with writer:
                # enter and leave as two separate appends: another writer inside would land
                # between them
                _note(journal, f"{name}+")
                await asyncio.sleep(0.002)
                _note(journal, f"{name}-")

    asyncio.run(run())


def test_writers_of_several_processes_take_turns(tmp_path: Path) -> None:
    lock_path, journal = tmp_path / "db.sqlite.writer-lock", tmp_path / "journal"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    workers = [
        context.Process(target=_take_turns, args=(str(lock_path), str(journal), name, 40, start))
        for name in ("a", "b", "c")
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(LIVENESS_SECONDS)
        assert w.exitcode == 0
    lines = journal.read_text().split()
    assert len(lines) == 3 * 40 * 2
    pairs = list(zip(lines[::2], lines[1::2], strict=True))
    assert all(
        enter[0] == leave[0] and enter[1] == "+" and leave[1] == "-" for enter, leave in pairs
    )


async def test_writers_of_one_process_queue(tmp_path: Path) -> None:
    writer = SqliteWriter(tmp_path / "db.writer-lock")
    inside: list[int] = []
    most = 0

    async def write() -> None:
        nonlocal most
        async with writer:
            inside.append(1)
            most = max(most, len(inside))
            await asyncio.sleep(0)
            inside.pop()

    await asyncio.wait_for(asyncio.gather(*(write() for _ in range(20))), LIVENESS_SECONDS)
    assert most == 1
    assert not writer.locked()


def _wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(0.01)


def _hold(lock_path: str, held: str, release: str) -> None:
    import fcntl

    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    Path(held).touch()
    while not Path(release).exists():
        time.sleep(0.01)
    os.close(fd)


async def test_a_writer_cancelled_while_waiting_leaves_no_lock(tmp_path: Path) -> None:
    pytest.importorskip("fcntl")
    lock_path = tmp_path / "db.writer-lock"
    held, release = tmp_path / "held", tmp_path / "release"
    holder = multiprocessing.get_context("spawn").Process(
        target=_hold, args=(str(lock_path), str(held), str(release))
    )
    holder.start()
    try:
        await asyncio.wait_for(asyncio.to_thread(_wait_for, held), LIVENESS_SECONDS)
        writer = SqliteWriter(lock_path)

        async def waiting() -> None:
            async with writer:
                pass

        task = asyncio.create_task(waiting())
        await asyncio.sleep(0.2)  # waiting for the other process's flock
        assert not task.done()
        task.cancel()
        release.touch()  # the thread then gets the flock, and gives it back at once
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, LIVENESS_SECONDS)
        assert not writer.locked()
        # nothing left behind: this process and another can take it again
        async with writer:
            pass
    finally:
        release.touch()
        holder.join(LIVENESS_SECONDS)
    assert holder.exitcode == 0
    other = multiprocessing.get_context("spawn").Process(
        target=_take_turns, args=(str(lock_path), str(tmp_path / "journal"), "x", 1)
    )
    other.start()
    other.join(LIVENESS_SECONDS)
    assert other.exitcode == 0


def test_the_lock_file_lies_beside_the_database(tmp_path: Path) -> None:
    writer = for_database(f"sqlite+aiosqlite:///{tmp_path}/kpr.db")
    assert writer is not None
    assert writer.lock_path == tmp_path / "kpr.db.writer-lock"
    memory = for_database("sqlite+aiosqlite:///:memory:")
    assert memory is not None
    assert memory.lock_path is None
    assert for_database("postgresql+asyncpg://u@h/db") is None
