"""The outbox sender: AppRecs and errors to the senders' queues, with retries."""

from __future__ import annotations

import asyncio
from typing import Protocol

from app.amqp.envelope import Envelope
from app.amqp.repository import Sessions, due_outbox, outbox_failed, outbox_sent
from app.platform.logs import get_logger

log = get_logger(__name__)


class Publishes(Protocol):
    def send(self, queue: str, envelope: Envelope, body: bytes) -> None: ...


async def send_due(sessions: Sessions, publisher: Publishes) -> int:
    """Send what is due; a failure is retried later with back-off. Returns how many were sent."""
    sent = 0
    for item in await due_outbox(sessions):
        try:
            await asyncio.to_thread(publisher.send, item.queue, item.envelope, item.body)
        except Exception as exc:
            log.warning("amqp.send_failed", outbox_id=item.outbox_id, error=type(exc).__name__)
            await outbox_failed(sessions, item, f"{type(exc).__name__}: {exc}")
            continue
        await outbox_sent(sessions, item.outbox_id)
        log.info("amqp.sent", outbox_id=item.outbox_id, queue=item.queue)
        sent += 1
    return sent
