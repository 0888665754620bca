"""The AMQP receiver as one task: receiver threads per queue, the processing and send loop.

Each queue gets a thread with its own connection (proton's blocking API); a message is
committed to the inbox from the thread through the event loop, then accepted. The loop
processes the inbox against the port and sends the outbox, woken by each stored message and
at least every `interval` seconds (for back-off retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field

from app.amqp.core_port import IntakePort
from app.amqp.envelope import Envelope, queue_names
from app.amqp.link import Publisher, receive_loop
from app.amqp.processor import process_due
from app.amqp.repository import Sessions, store_inbox
from app.amqp.sender import send_due
from app.platform.logs import get_logger
from app.platform.settings import Settings

log = get_logger(__name__)

RECONNECT_SECONDS = 5.0


def consumed_queues(settings: Settings) -> list[str]:
    names: list[str] = []
    for her in settings.amqp_queues:
        q = queue_names(her)
        names += [q["async"], q["sync"], q["error"]]
    return names


@dataclass
class AmqpRunner:
    settings: Settings
    sessions: Sessions
    port: IntakePort
    interval: float = 5.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def _receive_forever(self, queue: str, loop: asyncio.AbstractEventLoop) -> None:
        url = self.settings.amqp_url
        assert url is not None

        def store(name: str, envelope: Envelope, body: bytes) -> object:
            future = asyncio.run_coroutine_threadsafe(
                store_inbox(self.sessions, name, envelope, body, self.settings.max_message_bytes),
                loop,
            )
            stored = future.result()
            loop.call_soon_threadsafe(self._wake.set)
            return stored

        while not self._stop.is_set():
            try:
                receive_loop(
                    url,
                    self.settings.amqp_ca_file,
                    queue,
                    self.settings.amqp_credit,
                    store,
                    self._stop,
                )
            except Exception as exc:
                log.warning("amqp.receiver_failed", queue=queue, error=type(exc).__name__)
                self._stop.wait(RECONNECT_SECONDS)

    async def _cycle(self, publisher: Publisher) -> None:
        try:
            await process_due(self.sessions, self.port, self.settings.max_message_bytes)
            await send_due(self.sessions, publisher)
        except Exception:
            log.exception("amqp.cycle_failed")

    async def run(self, stop: asyncio.Event) -> None:
        url = self.settings.amqp_url
        assert url is not None
        loop = asyncio.get_running_loop()
        threads = [
            threading.Thread(
                target=self._receive_forever, args=(q, loop), name=f"amqp-{q}", daemon=True
            )
            for q in consumed_queues(self.settings)
        ]
        for thread in threads:
            thread.start()
        publisher = Publisher(url, self.settings.amqp_ca_file)
        log.info("amqp.started", queues=len(threads))
        try:
            while not stop.is_set():
                self._wake.clear()
                await self._cycle(publisher)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop, self._wake), self.interval)
        finally:
            self._stop.set()
            for thread in threads:
                await asyncio.to_thread(thread.join, 10.0)
            publisher.close()
            log.info("amqp.stopped")


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
