"""Opaque cursors: the id a page stopped at, base64url so clients do not build them."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import TypeVar

from fastapi import HTTPException

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def encode_cursor(last_id: int) -> str:
    raw = json.dumps({"id": last_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id in `cursor`, None without one; 400 for anything that is not ours."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        last = value["id"]
    except (ValueError, KeyError, TypeError, UnicodeError):
        raise HTTPException(400, "cursor: not a cursor from this API") from None
    if not isinstance(last, int) or isinstance(last, bool) or not 0 <= last < 2**63:
        raise HTTPException(400, "cursor: not a cursor from this API")
    return last


def page(rows: Sequence[T], limit: int, last_id: int | None) -> tuple[list[T], str | None]:
    """The first `limit` rows and the cursor of the next page (rows were fetched limit + 1)."""
    more = len(rows) > limit
    return list(rows[:limit]), (encode_cursor(last_id) if more and last_id is not None else None)
