"""Pure-ASGI middleware: a request id per request, generated here (bound into every log line
and returned in `X-Request-ID`), plus HTTP metrics by route template."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.platform.logs import get_logger
from app.platform.metrics import Metrics

log = get_logger("app.http")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        # Always our own: a client-chosen id would let anyone plant or collide references in
        # the log and in the texts senders are told to quote. The client's is logged beside it.
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if _SAFE_ID.match(incoming):
            structlog.contextvars.bind_contextvars(client_request_id=incoming)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            elapsed = time.perf_counter() - started
            self.metrics.http_requests.labels(template, str(status)).inc()
            self.metrics.http_seconds.labels(template).observe(elapsed)
            log.info(
                "http.request",
                method=scope.get("method"),
                route=template,
                status=status,
                ms=round(elapsed * 1000, 1),
            )
            structlog.contextvars.unbind_contextvars("request_id", "client_request_id")
