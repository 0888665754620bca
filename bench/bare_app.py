"""The reference endpoint for `bench.intake`: a bare ASGI app whose POST /ebms reads the whole
body and answers with fixed bytes (a real reply captured from the intake, so the size and the
content type match). Everything the intake does beyond HTTP and uvicorn is missing here.

Run as `uvicorn bench.bare_app:create_app --factory` with BENCH_REPLY_FILE (the reply body)
and BENCH_REPLY_CONTENT_TYPE set.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


def make_app(reply: bytes, content_type: str) -> Asgi:
    """POST /ebms -> 200 with `reply`; GET /readyz -> 200; anything else -> 404."""
    headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(reply)).encode()),
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method == "POST" and path == "/ebms":
            body = bytearray()
            more = True
            while more:
                message = await receive()
                body.extend(message.get("body", b""))
                more = message.get("more_body", False)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": reply})
        elif method == "GET" and path == "/readyz":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "http.response.body", "body": b"ok"})
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    return app


def create_app() -> Asgi:
    """The app from the environment (uvicorn --factory)."""
    reply = Path(os.environ["BENCH_REPLY_FILE"]).read_bytes()
    return make_app(reply, os.environ["BENCH_REPLY_CONTENT_TYPE"])
