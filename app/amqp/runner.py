"""The AMQP receiver as one task: receiver threads per queue, a processing and a send loop.

Each queue gets a thread with its own connection (proton's blocking API); a message is
committed to the inbox from the thread through the event loop, then accepted. One loop
processes the inbox against the port, woken by each stored message; the other sends the
outbox, woken by each answer; both run at least every `interval` seconds (for back-off
retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
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
    _wake: asyncio.Event = field(default_factory=asyncio.Event)  # a message was stored
    _outbox: asyncio.Event = field(default_factory=asyncio.Event)  # an answer is waiting

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

    async def _process(self) -> int:
        """Process what is due; each answer wakes the sender at once."""
        return await process_due(
            self.sessions,
            self.port,
            self.settings.max_message_bytes,
            self.settings.max_concurrent_messages,
            on_answer=self._outbox.set,
        )

    async def _loop(
        self, stop: asyncio.Event, wake: asyncio.Event, work: Callable[[], Awaitable[int]]
    ) -> None:
        """Run `work` until `stop`: again at once while it finds rows (a full batch may leave
        more due), else on `wake` or every `interval` seconds (the back-off's retries)."""
        while not stop.is_set():
            wake.clear()
            try:
                found = await work()
            except Exception:
                log.exception("amqp.cycle_failed")
                found = 0
            if found:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop, wake), self.interval)

    async def run(self, stop: asyncio.Event) -> None:
        """The receiver threads, and two loops: processing the inbox, and sending the outbox
        beside it (a reply leaves while the next message is processed)."""
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
            await asyncio.gather(
                self._loop(stop, self._wake, self._process),
                self._loop(stop, self._outbox, lambda: send_due(self.sessions, publisher)),
            )
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
