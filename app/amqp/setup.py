"""Declaring a HER-id's queues in RabbitMQ (dev and tests), with AMQP 0-9-1 (`pika`).

`{her}_async` and `{her}_sync` are quorum queues with a delivery limit that dead-letter to
`{her}_dl`; `_error`, `_dl` and `_syncreply` are plain quorum queues. With a namespace (the
URL's path) a direct exchange of that name routes each queue's name to it, as the
Tjenestebuss's `/exchange/{ns}/{queue}` addresses expect.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pika

from app.amqp.envelope import queue_names

DELIVERY_LIMIT = 10


def connection_parameters(url: str) -> pika.ConnectionParameters:
    parts = urlsplit(url)
    credentials = pika.PlainCredentials(
        unquote(parts.username or "guest"), unquote(parts.password or "guest")
    )
    return pika.ConnectionParameters(
        host=parts.hostname or "127.0.0.1", port=parts.port or 5672, credentials=credentials
    )


def declare(url: str, her_ids: list[int]) -> list[str]:
    """Declare the queues (idempotent); returns their names."""
    namespace = urlsplit(url).path.strip("/")
    declared: list[str] = []
    connection = pika.BlockingConnection(connection_parameters(url))
    try:
        channel = connection.channel()
        if namespace:
            channel.exchange_declare(namespace, exchange_type="direct", durable=True)
        for her in her_ids:
            names = queue_names(her)
            for kind, name in names.items():
                arguments: dict[str, object] = {"x-queue-type": "quorum"}
                if kind in ("async", "sync"):
                    arguments["x-delivery-limit"] = DELIVERY_LIMIT
                    arguments["x-dead-letter-exchange"] = ""
                    arguments["x-dead-letter-routing-key"] = names["dl"]
                channel.queue_declare(name, durable=True, arguments=arguments)
                if namespace:
                    channel.queue_bind(name, namespace, routing_key=name)
                declared.append(name)
    finally:
        connection.close()
    return declared


def delete(url: str, her_ids: list[int]) -> None:
    """Delete the HER-ids' queues (tests clean up after themselves: quorum queues are not free
    on a small broker)."""
    connection = pika.BlockingConnection(connection_parameters(url))
    try:
        channel = connection.channel()
        for her in her_ids:
            for name in queue_names(her).values():
                channel.queue_delete(name)
    finally:
        connection.close()
