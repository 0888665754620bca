"""The AMQP 1.0 links, with python-qpid-proton's blocking API (RabbitMQ's AMQP 1.0 dialect).

Receivers attach to `/amq/queue/{queue}` with a bounded link credit (flow control: the broker
never pushes more than `KPR_AMQP_CREDIT` unsettled messages); senders attach to
`/exchange/{ns}/{queue}`, `{ns}` being the URL's path, or `/amq/queue/{queue}` without one.
A message is accepted only after `store` returned (it is committed); a failure to store
releases it (`released`: RabbitMQ 3.10 refuses `modified`) for the broker to redeliver.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from proton import Message, SSLDomain, Timeout
from proton.utils import BlockingConnection

from app.amqp.envelope import Envelope
from app.platform.logs import get_logger

log = get_logger(__name__)

Store = Callable[[str, Envelope, bytes], object]


def split_url(url: str) -> tuple[str, str]:
    """`amqps://u:p@host:5671/ns` → (`amqps://u:p@host:5671`, `ns`)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")), parts.path.strip("/")


def sender_address(namespace: str, queue: str) -> str:
    return f"/exchange/{namespace}/{queue}" if namespace else f"/amq/queue/{queue}"


def receiver_address(queue: str) -> str:
    return f"/amq/queue/{queue}"


def ssl_domain(url: str, ca_file: Path | None) -> SSLDomain | None:
    if not url.startswith("amqps://"):
        return None
    domain = SSLDomain(SSLDomain.MODE_CLIENT)
    if ca_file is not None:
        domain.set_trusted_ca_db(str(ca_file))
    domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
    return domain


def connect(url: str, ca_file: Path | None, timeout: float = 30.0) -> BlockingConnection:
    base, _ = split_url(url)
    return BlockingConnection(
        base, timeout=timeout, ssl_domain=ssl_domain(url, ca_file), allowed_mechs="PLAIN ANONYMOUS"
    )


def to_proton(envelope: Envelope, body: bytes) -> Message:
    message = Message(
        body=body,
        id=envelope.message_id,
        subject=envelope.subject,
        correlation_id=envelope.correlation_id,
        reply_to=envelope.reply_to,
        content_type=envelope.content_type,
        properties=dict(envelope.application),
    )
    if envelope.to is not None:
        message.address = envelope.to
    message.durable = True
    message.inferred = True  # bytes as one Data section, as Helsenorge sends
    return message


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def from_proton(message: Message) -> tuple[Envelope, bytes]:
    body = message.body
    if isinstance(body, memoryview):
        body = body.tobytes()
    if isinstance(body, str):
        body = body.encode()
    properties: dict[Any, Any] = message.properties or {}
    envelope = Envelope(
        message_id=_text(message.id) or "",
        to=_text(message.address),
        subject=_text(message.subject),
        correlation_id=_text(message.correlation_id),
        reply_to=_text(message.reply_to),
        content_type=_text(message.content_type),
        application={str(k): str(v) for k, v in properties.items()},
    )
    return envelope, body if isinstance(body, bytes) else b""


class Publisher:
    """One connection, one sender link per queue; closed and reopened after a failure."""

    def __init__(self, url: str, ca_file: Path | None) -> None:
        self.url = url
        self.ca_file = ca_file
        self._connection: BlockingConnection | None = None
        self._senders: dict[str, Any] = {}

    def send(self, queue: str, envelope: Envelope, body: bytes) -> None:
        try:
            if self._connection is None:
                self._connection = connect(self.url, self.ca_file)
            sender = self._senders.get(queue)
            if sender is None:
                address = sender_address(split_url(self.url)[1], queue)
                sender = self._senders[queue] = self._connection.create_sender(address)
            sender.send(to_proton(envelope, body))  # waits for the broker's accept
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        connection, self._connection, self._senders = self._connection, None, {}
        if connection is not None:
            try:
                connection.close()
            except Exception:  # already broken
                log.debug("amqp.close_failed")


def receive_loop(
    url: str, ca_file: Path | None, queue: str, credit: int, store: Store, stop: threading.Event
) -> None:
    """Receive until `stop` is set; raises when the connection fails (the runner reconnects)."""
    connection = connect(url, ca_file)
    try:
        receiver = connection.create_receiver(receiver_address(queue), credit=credit)
        while not stop.is_set():
            try:
                message = receiver.receive(timeout=1.0)
            except Timeout:
                continue
            envelope, body = from_proton(message)
            try:
                store(queue, envelope, body)
            except Exception:
                log.exception("amqp.store_failed", queue=queue)
                receiver.release(delivered=False)
                continue
            receiver.accept()
    finally:
        connection.close()
