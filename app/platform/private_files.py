"""Files and directories that hold personal data or keys, created readable by their owner
only (issue 20): directories 0700, files 0600, whatever the process's umask.

Only what this service creates is set so; an existing directory or file keeps the mode its
operator gave it (`kpr-mottak` never loosens or silently changes a mode it did not make)."""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """`path` and every missing parent made 0700 (`Path.mkdir(parents=True)` would give the
    parents the umask's mode: `var/` of `var/mail` would be world-readable)."""
    missing: list[Path] = []
    at = path
    while not at.exists():
        missing.append(at)
        if at.parent == at:
            break
        at = at.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it meanwhile
            continue
        os.chmod(directory, DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def private_file(path: Path) -> bool:
    """An empty file at `path`, 0600, when there is none (False when there is one): SQLite
    takes an empty file as a new database and gives its -wal and -shm files the same mode."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    return True


def write_private(path: Path, data: bytes) -> None:
    """`data` to a new or existing file at `path`; a new one is made 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
