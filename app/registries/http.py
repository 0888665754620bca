"""The registries' calls through the service's one outbound client, with their metrics and
log lines (no personal data: HER-ids of organisations and outcomes only)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from app.outbound import Failure, OutboundClient, OutboundError, OutboundResponse
from app.platform.logs import get_logger
from app.platform.metrics import Metrics
from app.registries.models import RegistryUnavailable

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Caller:
    """One registry's outbound calls: the client, its limits and where metrics go."""

    client: OutboundClient
    registry: str  # ar-soap | ar-rest | cppa | helseid
    deadline: float
    max_bytes: int
    metrics: Metrics | None = None

    async def call(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
        operation: str,
        not_found: tuple[int, ...] = (),
        accept_status: frozenset[int] = frozenset(),
    ) -> OutboundResponse | None:
        """The answer (also for a status in `accept_status`, e.g. a SOAP fault's 500); None
        for a status in `not_found`. Anything else raises RegistryUnavailable."""
        started = time.monotonic()
        outcome = "ok"
        try:
            return await self.client.request(
                method,
                url,
                max_bytes=self.max_bytes,
                deadline=self.deadline,
                headers=headers,
                content=content,
                accept_status=accept_status,
            )
        except OutboundError as exc:
            status = _status(exc)
            if status in not_found:
                outcome = "not_found"
                return None
            outcome = exc.failure.value
            raise RegistryUnavailable(f"{self.registry} {operation}: {exc}") from None
        finally:
            elapsed = time.monotonic() - started
            log.info(
                "registry call",
                extra={"registry": self.registry, "operation": operation, "outcome": outcome},
            )
            if self.metrics is not None:
                self.metrics.registry_call(self.registry, operation, outcome, elapsed)


def _status(exc: OutboundError) -> int | None:
    if exc.failure is not Failure.STATUS:
        return None
    text = str(exc).rsplit("HTTP ", 1)[-1]
    return int(text) if text.isdigit() else None
