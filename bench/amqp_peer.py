"""The municipality's side of the bus for the AMQP benchmark and soak: its queues, its
messages sent the Helsenorge way (`app.amqp.devsender`: its own CMS, written apart from the
receiver), and a collector thread that takes every answer off `{her}_async` and `{her}_error`
and opens each AppRec (decrypt with the municipality's key, verify KPR's signature).

The broker is RabbitMQ with the AMQP 1.0 plugin (docs/operations.md); queues are declared
with `app.amqp.setup` and deleted afterwards (quorum queues are not free on a small broker).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proton import Message, Timeout
from proton.utils import BlockingConnection

from app.amqp import devsender
from app.amqp.setup import declare, delete
from app.security.enveloped import decrypt_enveloped
from app.security.keys import KeyPair, load_key_pair
from app.security.signed_data import verify_signed_data
from bench.intake import Head

BROKER = "amqp://guest:guest@127.0.0.1:5672"


def fresh_her_ids(senders: int = 1) -> tuple[int, list[int]]:
    """KPR's and `senders` municipalities' HER-ids that no other run's queues use."""
    base = 70_000_000 + secrets.randbelow(9_000_000)
    return 90_000_000 + secrets.randbelow(9_000_000), [base + k for k in range(senders)]


@contextmanager
def queues(url: str, her_ids: Sequence[int]) -> Iterator[None]:
    """The HER-ids' queues, declared for the block and deleted after it."""
    declare(url, list(her_ids))
    try:
        yield
    finally:
        delete(url, list(her_ids))


def queue_depth(url: str, queue: str) -> int:
    """Messages waiting in `queue` (AMQP 0-9-1 passive declare)."""
    import pika

    from app.amqp.setup import connection_parameters

    connection = pika.BlockingConnection(connection_parameters(url))
    try:
        declared = connection.channel().queue_declare(queue, passive=True)
        return int(declared.method.message_count)
    finally:
        connection.close()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message as the municipality sends it."""

    message_id: str
    msg_id: str  # the MsgHead's MsgId
    message: Message


def outgoing(head: Head, *, pki_dir: Path, to_her: int) -> Outgoing:
    """`head` signed and encrypted from the dev PKI, with Helsenorge's properties."""
    body = devsender.protect(head.xml, pki_dir)
    sent = devsender.message(body, from_her=str(head.her), to_her=str(to_her), subject="KPR_IPL")
    return Outgoing(str(sent.id), head.msg_id, sent)


def send_all(url: str, messages: Sequence[Outgoing], to_her: int) -> None:
    """Send in order on one link; each send waits for the broker's accept."""
    connection = BlockingConnection(url, timeout=120, allowed_mechs="PLAIN ANONYMOUS")
    try:
        sender = connection.create_sender(f"/amq/queue/{to_her}_async")
        for item in messages:
            sender.send(item.message)
    finally:
        connection.close()


@dataclass(frozen=True, slots=True)
class Answer:
    queue: str
    correlation_id: str
    properties: dict[str, str]
    body: bytes
    at: float  # time.perf_counter() when it was taken off the queue


def load_encryption(pki_dir: Path) -> KeyPair:
    return load_key_pair(
        (pki_dir / "municipality-encryption.key").read_bytes(),
        (pki_dir / "municipality-encryption.crt").read_bytes(),
    )


def open_apprec(body: bytes, key: KeyPair) -> bytes:
    """The AppRec XML of an answer on `_async`: decrypted, KPR's signature verified."""
    opened = decrypt_enveloped(body, [key])
    if opened.content is None:
        raise ValueError("the AppRec does not decrypt with the municipality's key")
    signed = verify_signed_data(opened.content)
    if signed.content is None:
        raise ValueError("the AppRec's signature does not verify")
    return signed.content


@dataclass
class Collector:
    """Takes every answer off the municipalities' `_async` and `_error` queues until stopped."""

    url: str
    her_ids: Sequence[int]
    answers: list[Answer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Collector:
        for queue in (f"{her}_{kind}" for her in self.her_ids for kind in ("async", "error")):
            thread = threading.Thread(target=self._run, args=(queue,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def count(self, queue_kind: str | None = None) -> int:
        with self._lock:
            if queue_kind is None:
                return len(self.answers)
            return sum(1 for a in self.answers if a.queue.endswith(f"_{queue_kind}"))

    def correlated(self) -> set[str]:
        with self._lock:
            return {a.correlation_id for a in self.answers}

    def wait_for(self, wanted: set[str], timeout: float) -> bool:
        """True once every message id in `wanted` has an answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if wanted <= self.correlated():
                return True
            time.sleep(0.05)
        return wanted <= self.correlated()

    def _run(self, queue: str) -> None:
        while not self._stop.is_set():
            try:
                self._receive(queue)
            except Exception as exc:  # the broker went away: note it and reconnect
                with self._lock:
                    self.errors.append(f"{queue}: {type(exc).__name__}: {exc}")
                self._stop.wait(1.0)

    def _receive(self, queue: str) -> None:
        connection = BlockingConnection(self.url, timeout=60, allowed_mechs="PLAIN ANONYMOUS")
        try:
            receiver = connection.create_receiver(f"/amq/queue/{queue}", credit=64)
            while not self._stop.is_set():
                try:
                    got = receiver.receive(timeout=0.5)
                except Timeout:
                    continue
                receiver.accept()
                self._keep(queue, got)
        finally:
            connection.close()

    def _keep(self, queue: str, got: Message) -> None:
        raw: dict[Any, Any] = got.properties or {}
        body = got.body
        if isinstance(body, memoryview):
            body = body.tobytes()
        answer = Answer(
            queue=queue,
            correlation_id=str(got.correlation_id or ""),
            properties={str(k): str(v) for k, v in raw.items()},
            body=body if isinstance(body, bytes) else b"",
            at=time.perf_counter(),
        )
        with self._lock:
            self.answers.append(answer)
