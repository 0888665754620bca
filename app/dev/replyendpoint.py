"""A sender MSH's endpoint for asynchronous replies, for `kpr-mottak send --async-endpoint`
and the tests: an HTTP server on a loopback port, in a thread, that answers every POST with
200 and hands its body on. `down()` makes it answer 503 (a sender whose MSH is down), `up()`
takes replies again."""

from __future__ import annotations

import queue
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Posted:
    path: str
    content_type: str
    soap_action: str | None
    body: bytes


@dataclass
class ReplyEndpoint:
    port: int
    tls: bool = False
    received: queue.Queue[Posted] = field(default_factory=queue.Queue)
    refusing: threading.Event = field(default_factory=threading.Event)
    refused: int = 0

    @property
    def url(self) -> str:
        if self.tls:  # the name its certificate is for
            return f"https://localhost:{self.port}/ebms-replies"
        return f"http://127.0.0.1:{self.port}/ebms-replies"

    def down(self) -> None:
        self.refusing.set()

    def up(self) -> None:
        self.refusing.clear()

    def next(self, timeout: float) -> Posted:
        """The next reply posted; `queue.Empty` when none came within `timeout` seconds."""
        return self.received.get(timeout=timeout)


def _handler(endpoint: ReplyEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:  # http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, MAX_BODY))
            if endpoint.refusing.is_set():
                endpoint.refused += 1
                self._answer(503)
                return
            endpoint.received.put(
                Posted(
                    self.path,
                    self.headers.get("Content-Type", ""),
                    self.headers.get("SOAPAction"),
                    body,
                )
            )
            self._answer(200)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def reply_endpoint(port: int = 0, *, tls: ssl.SSLContext | None = None) -> Iterator[ReplyEndpoint]:
    """Listen on 127.0.0.1:`port` (0: any free port) until the block ends; over TLS with the
    server context `tls` (its certificate for `localhost`)."""
    endpoint = ReplyEndpoint(port, tls=tls is not None)
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(endpoint))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    endpoint.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="reply-endpoint")
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
