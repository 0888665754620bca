"""Reading a payload with bounded memory: counting its elements before a tree is built,
reading it whole, hashing it, and giving freed heap back to the system."""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
from collections.abc import Callable
from typing import IO, Literal

from app.security import cms


def count_elements(data: bytes) -> int:
    """An upper bound on the elements of an XML document, without building a tree: every
    element has one start tag, and `<` cannot stand raw in text or attribute values."""
    return data.count(b"<") - data.count(b"</")


_CHUNK = 1024 * 1024
# After a tree of a document at least this large (the enveloped ds:Signature's tree path) the
# freed heap is handed back to the system.
TRIM_AFTER_BYTES = cms.SPOOL_MAX_SIZE


def release_freed_memory() -> None:
    """glibc keeps freed heap memory (libxml2's tree of a large document: hundreds of MB) for
    the process, where Python's own allocations do not reuse it; `malloc_trim` returns it.
    Nothing elsewhere (another C library, no libc found)."""
    global _malloc_trim
    if _malloc_trim is None:
        _malloc_trim = _find_malloc_trim()
    if _malloc_trim is not False:
        _malloc_trim(0)


def _find_malloc_trim() -> Callable[[int], int] | Literal[False]:
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return False
    return trim


_malloc_trim: Callable[[int], int] | Literal[False] | None = None


def count_elements_in(source: IO[bytes]) -> int:
    """`count_elements` over a binary file, read in chunks from its current position (left
    at the end)."""
    count = 0
    last = b""
    while chunk := source.read(_CHUNK):
        count += chunk.count(b"<") - chunk.count(b"</")
        if last == b"<" and chunk[:1] == b"/":  # a `</` split between two chunks
            count -= 1
        last = chunk[-1:]
    return count


def read_all(source: IO[bytes]) -> bytes:
    """The whole of a spool, from the start; left at position 0."""
    source.seek(0)
    data = source.read()
    source.seek(0)
    return data


def sha256_of(source: IO[bytes]) -> str:
    """SHA-256 of a spool from the start, read in chunks; left at position 0."""
    source.seek(0)
    digest = hashlib.sha256()
    while chunk := source.read(_CHUNK):
        digest.update(chunk)
    source.seek(0)
    return digest.hexdigest()
