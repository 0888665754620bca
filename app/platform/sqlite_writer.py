"""One writer at a time for a SQLite database, across the worker processes of `serve`.

SQLite has one writer per database file. Left to itself, a second writer polls in SQLite's
busy handler, and a process whose writers follow each other closely can keep the lock for
longer than the busy timeout (15 s): the other process's message then fails. So writers take
turns here instead: this process's writers queue on an `asyncio.Lock`, and the one at the head
takes an exclusive `flock` on a file beside the database (waited for in a worker thread, so
the event loop stays free), which the kernel hands to the waiting processes in turn.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import TracebackType

import anyio

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: this process's lock only
    fcntl = None  # type: ignore[assignment]


class SqliteWriter:
    """`async with writer:` around a write transaction (`lock_path` None: in-process only,
    e.g. an in-memory database)."""

    def __init__(self, lock_path: Path | None) -> None:
        self.lock_path = lock_path
        self._local = asyncio.Lock()
        self._fd: int | None = None

    async def __aenter__(self) -> SqliteWriter:
        await self._local.acquire()
        try:
            if self.lock_path is not None and fcntl is not None:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    # not abandoned on cancel: the thread's lock is always given back below
                    await anyio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)  # closing the file gives the lock back
                    raise
                self._fd = fd
        except BaseException:
            self._local.release()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        self._local.release()

    def locked(self) -> bool:
        return self._local.locked()


def for_database(database_url: str) -> SqliteWriter | None:
    """The writer lock of a SQLite database URL (None for other databases); its lock file
    is `<database>.writer-lock`."""
    if not database_url.startswith("sqlite"):
        return None
    path = database_url.split("///", 1)[-1]
    if not path or path == ":memory:" or path.startswith("file:"):
        return SqliteWriter(None)
    return SqliteWriter(Path(f"{path}.writer-lock"))
