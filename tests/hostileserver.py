"""A real HTTP server on loopback that misbehaves on purpose, in a thread of the test process:
per path it trickles a body a byte at a time, streams hundreds of megabytes (with or without
announcing them), redirects, or answers plainly. It counts what it was asked and what it wrote,
so a test can assert on bytes rather than on time."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_CHUNK = 64 * 1024


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    trickle: float | None = None  # seconds between the body's bytes
    huge: int = 0  # stream this many zero bytes instead of `body`
    announce: bool = True  # send Content-Length (else the body ends when the server closes)


@dataclass
class HostileServer:
    base_url: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)  # body bytes written, per path
    finished: Counter[str] = field(default_factory=Counter)  # bodies written in full
    active: Counter[str] = field(default_factory=Counter)  # responses being written now
    request_headers: list[dict[str, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def count(self, counter: Counter[str], path: str, n: int = 1) -> None:
        with self.lock:
            counter[path] += n


def _serve(handler: BaseHTTPRequestHandler, server: HostileServer) -> None:
    path = handler.path.split("?", 1)[0]
    server.count(server.hits, path)
    with server.lock:
        server.request_headers.append({k.lower(): v for k, v in handler.headers.items()})
    length = int(handler.headers.get("Content-Length", "0") or 0)
    if length:
        handler.rfile.read(length)
    route = server.routes.get(path)
    if route is None:
        handler.send_response(404)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return
    size = route.huge or len(route.body)
    handler.send_response(route.status)
    for name, value in route.headers.items():
        handler.send_header(name, value)
    if route.announce:
        handler.send_header("Content-Length", str(size))
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.flush()
    server.count(server.active, path)
    try:
        _write_body(handler, server, route, path)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up: as it should
        return
    finally:
        server.count(server.active, path, -1)


def _write_body(
    handler: BaseHTTPRequestHandler, server: HostileServer, route: Route, path: str
) -> None:
    if route.trickle is not None:
        for byte in route.body:
            if server.stop.wait(route.trickle):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            server.count(server.sent, path)
    elif route.huge:
        left = route.huge
        zeros = bytes(_CHUNK)
        while left > 0 and not server.stop.is_set():
            piece = zeros[: min(left, _CHUNK)]
            handler.wfile.write(piece)
            server.count(server.sent, path, len(piece))
            left -= len(piece)
        if left > 0:
            return
    else:
        handler.wfile.write(route.body)
        server.count(server.sent, path, len(route.body))
    server.count(server.finished, path)


@contextmanager
def hostile_server(routes: dict[str, Route] | None = None) -> Iterator[HostileServer]:
    state = HostileServer(routes=dict(routes or {}))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            _serve(self, state)

        def do_POST(self) -> None:
            _serve(self, state)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()  # trickles and streams end at their next byte
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
