"""structlog configuration: dotted event names, key=value fields, JSON when not on a TTY."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog

from app.identifiers import mask_person_ids


def _mask_value(value: object, *, identifier: bool = False) -> object:
    if isinstance(value, str):
        # A field named *_id holding only digits is an identifier (a MessageId, a reference):
        # shown whole unless it is a person number, as the AppRec shows a brukerNr.
        keep = value if identifier and value.isdigit() else None
        return mask_person_ids(value, keep=keep)
    if isinstance(value, list | tuple):
        return type(value)(_mask_value(v) for v in value)
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    return value


def mask_person_id_fields(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Fødselsnummer-like text masked in every log field as a last line of defence; the code
    never logs message content or person identifiers on purpose."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _mask_value(value, identifier=key.endswith("_id"))
    return event_dict


def error_location(exc: BaseException, limit: int = 6) -> list[str]:
    """Where an exception came from, as `file:line function` of its innermost frames, without
    its message or locals: messages of driver or parser errors can quote data."""
    frames = traceback.extract_tb(exc.__traceback__)
    # Our own frames say where it happened; the innermost one says what failed.
    ours = [f for f in frames if "/site-packages/" not in f.filename]
    picked = [*ours[-(limit - 1) :], frames[-1]] if frames else []
    seen: list[str] = []
    for f in picked:
        text = f"{f.filename.rsplit('/site-packages/', 1)[-1]}:{f.lineno} {f.name}"
        if text not in seen:
            seen.append(text)
    return seen


class _SafeStderr:
    """The current sys.stderr, looked up at each write; a log line that cannot be written
    (a closed pipe, a full disk) is dropped rather than failing the request that logs it."""

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except (OSError, ValueError):
            return 0

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()


def configure_logging(log_format: str = "auto", level: int = logging.INFO) -> None:
    json_output = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_person_id_fields,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _SafeStderr())),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
