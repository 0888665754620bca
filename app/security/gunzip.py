"""Gunzip of decrypted content, stream-wise with a cap, so a zip bomb becomes a finding instead of
an outage.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from app.core.findings import Finding
from app.security import rules
from app.security.cms_der import _finding
from app.security.enveloped import Write

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_INFLATED = 200 * 1024 * 1024  # 50 MB packed (NHN's cap) at a generous 4x ratio


@dataclass(frozen=True, slots=True, kw_only=True)
class Inflated:
    content: bytes | None
    findings: tuple[Finding, ...]
    compressed: bool


def inflate(data: bytes, max_size: int = DEFAULT_MAX_INFLATED) -> Inflated:
    """Gunzip `data` when it starts with 1f 8b (stream-wise, never more than `max_size`
    bytes); pass anything else through unchanged."""
    if not data.startswith(GZIP_MAGIC):
        return Inflated(content=data, findings=(), compressed=False)
    out = bytearray()
    gunzip = Gunzip(out.extend, max_size)
    gunzip.feed(data)
    findings = gunzip.finish()
    return Inflated(content=None if findings else bytes(out), findings=findings, compressed=True)


class Gunzip:
    """Gunzip fed in chunks, the output handed to `write`, never more than `max_size` bytes in
    all; several members in a row are one stream, zero bytes after the last are tolerated
    (as some tools pad). `finish` gives the findings (`inflate`'s): too large, or corrupt,
    truncated or followed by something else. After a finding, further input is ignored."""

    def __init__(self, write: Write, max_size: int = DEFAULT_MAX_INFLATED) -> None:
        self._write = write
        self._max = max_size
        self.size = 0
        self._decomp = zlib.decompressobj(wbits=31)
        self._between = False  # a member ended: what follows is another one or zero padding
        self._tail = b""  # the first bytes after a member (to tell the magic from padding)
        self._padding = False  # only zero bytes may follow
        self._finding: Finding | None = None

    def feed(self, data: bytes) -> None:
        if self._finding is not None or not data:
            return
        try:
            self._feed(data)
        except zlib.error as exc:
            self._finding = _gzip_corrupt(exc)

    def finish(self) -> tuple[Finding, ...]:
        if self._finding is None:
            try:
                if not self._between:
                    raise zlib.error("truncated gzip data")
                if self._tail.strip(b"\x00"):
                    raise zlib.error("trailing garbage after gzip data")
            except zlib.error as exc:
                self._finding = _gzip_corrupt(exc)
        return () if self._finding is None else (self._finding,)

    def _feed(self, data: bytes) -> None:
        pending = data
        while pending:
            if self._between:
                pending = self._after_member(pending)
                continue
            out = self._decomp.decompress(pending, self._max + 1 - self.size)
            self.size += len(out)
            if self.size > self._max:
                self._finding = _gzip_too_large(self._max)
                return
            if out:
                self._write(out)
            pending = self._decomp.unconsumed_tail
            if self._decomp.eof:
                self._between = True
                pending = self._decomp.unused_data

    def _after_member(self, data: bytes) -> bytes:
        """What follows a member: a further member (returned, to be inflated), else zero bytes
        to the end (else trailing garbage)."""
        if self._padding:
            if data.strip(b"\x00"):
                raise zlib.error("trailing garbage after gzip data")
            return b""
        self._tail += data
        if len(self._tail) < len(GZIP_MAGIC):
            return b""
        rest, self._tail = self._tail, b""
        if rest.startswith(GZIP_MAGIC):
            self._decomp = zlib.decompressobj(wbits=31)
            self._between = False
            return rest
        if rest.strip(b"\x00"):
            raise zlib.error("trailing garbage after gzip data")
        self._padding = True
        return b""


def _gzip_too_large(max_size: int) -> Finding:
    return _finding(
        rules.GZIP_TOO_LARGE,
        f"Innholdet er gzip-komprimert og blir større enn {max_size} byte når det pakkes ut.",
        "gzip",
    )


def _gzip_corrupt(exc: zlib.error) -> Finding:
    return _finding(
        rules.GZIP_CORRUPT,
        f"Innholdet starter som gzip, men kan ikke pakkes ut ({exc}).",
        "gzip",
    )
