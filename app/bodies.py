"""The gate in front of POST /ebms bodies (issue 20, hole 7), and the spool a body goes to.

Anyone may open a connection and start an upload before anything is authenticated, so what
uploads may hold is bounded before the first byte is written: at most
`KPR_MAX_RECEIVING_BODIES` bodies arriving at once, and at most `KPR_SPOOL_BUDGET_BYTES` in
all spooled bodies together (a declared Content-Length is reserved whole; a chunked body
reserves as it grows). The counts live in the process (one event loop: plain integers, no
lock); each request releases what it holds in a `finally`, however it ends.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import IO, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from app.platform.settings import Settings

# A body past this is written to a file as it arrives: uploads waiting for an intake slot (a
# deadline day's hundreds of 10 MB messages) hold no memory meanwhile.
MEMORY_BYTES = 1024 * 1024
SPOOL_PREFIX, SPOOL_SUFFIX = "kpr-body-", ".part"
# What a refused sender is told to wait: a stalled body holds its share for at most
# KPR_BODY_TIMEOUT_SECONDS, most bodies far shorter.
RETRY_AFTER_SECONDS = 30

Reason = Literal["receiving", "budget"]


class Refused(Exception):
    """No room for this body now (`reason`: too many bodies arriving, or the byte budget)."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason: Reason = reason


class BodyGate:
    """Slots for bodies being received and bytes for spooled bodies, for one process."""

    def __init__(
        self,
        *,
        max_bodies: int,
        budget_bytes: int,
        spool_dir: Path | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.max_bodies = max_bodies
        self.budget_bytes = budget_bytes
        self.spool_dir = spool_dir
        self.receiving = 0
        self.spooled_bytes = 0
        registry = registry if registry is not None else CollectorRegistry()
        self.refused = Counter(
            "kpr_ebms_bodies_refused_total",
            "POST /ebms bodies not taken: 503 (receiving: too many at once; budget: the spool "
            "budget) or 408 (timeout: the body did not arrive in time)",
            ["reason"],
            registry=registry,
        )
        self._receiving_gauge = Gauge(
            "kpr_ebms_bodies_receiving",
            "POST /ebms bodies being received now (KPR_MAX_RECEIVING_BODIES)",
            registry=registry,
        )
        self._bytes_gauge = Gauge(
            "kpr_ebms_spooled_bytes",
            "Bytes reserved by the spooled POST /ebms bodies now (KPR_SPOOL_BUDGET_BYTES)",
            registry=registry,
        )

    @classmethod
    def for_settings(cls, settings: Settings, registry: CollectorRegistry) -> BodyGate:
        return cls(
            max_bodies=settings.max_receiving_bodies,
            budget_bytes=settings.spool_budget_bytes,
            spool_dir=settings.spool_dir,
            registry=registry,
        )

    def prepare(self) -> None:
        """The spool directory, made private (bodies are personal data) when it is new."""
        if self.spool_dir is not None:
            self.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def admit(self, declared: int | None) -> Reservation:
        """A slot, and `declared` bytes (0 for a chunked body) reserved; `Refused` when
        either is not free. Nothing of the body has been read yet."""
        if self.receiving >= self.max_bodies:
            self.refused.labels("receiving").inc()
            raise Refused("receiving")
        want = declared or 0
        # a chunked body needs some room to start in, a declared one all of it
        if self.spooled_bytes + want > self.budget_bytes or self.spooled_bytes >= self.budget_bytes:
            self.refused.labels("budget").inc()
            raise Refused("budget")
        self.receiving += 1
        self.spooled_bytes += want
        self._publish()
        return Reservation(self, want)

    def _publish(self) -> None:
        self._receiving_gauge.set(self.receiving)
        self._bytes_gauge.set(self.spooled_bytes)


class Reservation:
    """What one body holds: its receiving slot until `received`, its bytes until `release`.
    Both are idempotent; `release` frees whatever is still held."""

    def __init__(self, gate: BodyGate, reserved: int) -> None:
        self._gate = gate
        self.reserved = reserved
        self._slot = True

    def grow(self, size: int) -> None:
        """The body has reached `size` bytes: reserve what it has past its reservation;
        `Refused("budget")` (reserving nothing more) when the budget has no room for it."""
        more = size - self.reserved
        if more <= 0:
            return
        gate = self._gate
        if gate.spooled_bytes + more > gate.budget_bytes:
            gate.refused.labels("budget").inc()
            raise Refused("budget")
        gate.spooled_bytes += more
        self.reserved = size
        gate._publish()

    def received(self) -> None:
        """The whole body is in: its slot is free for the next one (its bytes stay held)."""
        if self._slot:
            self._slot = False
            self._gate.receiving -= 1
            self._gate._publish()

    def release(self) -> None:
        self.received()
        if self.reserved:
            self._gate.spooled_bytes -= self.reserved
            self.reserved = 0
            self._gate._publish()


class BodySpool:
    """A body as it arrives: in memory up to `MEMORY_BYTES`, then in a file
    `kpr-body-*.part` in the spool directory (mode 0600), removed when `file` is closed."""

    def __init__(self, directory: Path | None) -> None:
        self._directory = directory
        self._memory: io.BytesIO | None = io.BytesIO()
        self._file: IO[bytes] = self._memory

    @property
    def file(self) -> IO[bytes]:
        return self._file

    def write(self, data: bytes) -> None:
        memory = self._memory
        if memory is not None and memory.tell() + len(data) > MEMORY_BYTES:
            disk = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed with the request
                mode="w+b",
                dir=self._directory,
                prefix=SPOOL_PREFIX,
                suffix=SPOOL_SUFFIX,
            )
            try:
                disk.write(memory.getbuffer())
            except BaseException:
                disk.close()
                raise
            self._file, self._memory = disk, None
            memory.close()
        self._file.write(data)

    def close(self) -> None:
        self._file.close()
