"""One JSON error shape for the API: RFC 9457 problem details (`application/problem+json`)
with `type`, `title`, `status`, `detail`, and the house `error` code as an extension member
(`{"error": Code, "detail": str}` stays valid for older clients). No tracebacks."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.platform.logs import get_logger

log = get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://kpr-mottak.invalid/problems/"

_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "ValidationFailed",
    503: "Unavailable",
}
_TITLES = {
    "BadRequest": "Bad request",
    "Unauthorized": "Missing, unknown, revoked or expired token",
    "Forbidden": "Not allowed for this role",
    "NotFound": "Not found",
    "MethodNotAllowed": "Method not allowed",
    "Conflict": "Conflict",
    "PayloadTooLarge": "Payload too large",
    "UnsupportedMediaType": "Unsupported media type",
    "ValidationFailed": "The request is not valid",
    "Unavailable": "Unavailable",
    "InternalError": "Internal error",
}


def error_response(
    status: int, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    code = _CODES.get(status, "Error")
    return JSONResponse(
        problem(status, code, detail),
        status_code=status,
        headers=dict(headers) if headers else None,
        media_type=PROBLEM_JSON,
    )


def problem(status: int, code: str, detail: str) -> dict[str, object]:
    """The problem-details body; `type` names the error code, `title` says it in words."""
    return {
        "type": PROBLEM_BASE + code,
        "title": _TITLES.get(code, code),
        "status": status,
        "detail": detail,
        "error": code,
    }


def install_error_handlers(app: FastAPI) -> None:
    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return error_response(exc.status_code, str(exc.detail), exc.headers)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return error_response(422, "; ".join(parts) or "invalid request")

    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("http.unhandled_error", error_type=type(exc).__name__)
        return JSONResponse(
            problem(500, "InternalError", "internal error; it has been logged"),
            status_code=500,
            media_type=PROBLEM_JSON,
        )

    app.add_exception_handler(HTTPException, http_error)  # FastAPI's subclasses this one
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
