"""Small XML helpers shared by the MsgHead and AppRec code: xs:dateTime, readable paths and
schema error reporting."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol, cast
from zoneinfo import ZoneInfo

from lxml import etree

from app.core.xmlparse import schema_message

OSLO = ZoneInfo("Europe/Oslo")

_XS_DATETIME = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})T(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
    r"(?:\.(?P<f>\d+))?(?P<tz>Z|[+-]\d{2}:\d{2})?"
)


def parse_xs_datetime(text: str) -> datetime | None:
    """An xs:dateTime as an aware datetime; no zone means Europe/Oslo (MsgHead convention).

    Returns None when the text is not a valid xs:dateTime (4-digit years only).
    """
    m = _XS_DATETIME.fullmatch(text.strip())
    if m is None:
        return None
    frac = (m["f"] or "")[:6].ljust(6, "0")
    try:
        naive = datetime(
            int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]), int(m["s"]),
            int(frac),
        )  # fmt: skip
    except ValueError:
        return None
    tz = m["tz"]
    if tz is None:
        return naive.replace(tzinfo=OSLO)
    if tz == "Z":
        return naive.replace(tzinfo=UTC)
    sign = 1 if tz[0] == "+" else -1
    hours, minutes = int(tz[1:3]), int(tz[4:6])
    if hours > 14 or minutes > 59:
        return None
    return naive.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))


def format_xs_datetime(moment: datetime) -> str:
    """An aware datetime as xs:dateTime in Norwegian local time with its offset."""
    if moment.tzinfo is None:
        raise ValueError("format_xs_datetime needs an aware datetime")
    return moment.astimezone(OSLO).isoformat(timespec="seconds")


def is_xs_datetime(text: str) -> bool:
    return parse_xs_datetime(text) is not None


def local_name(el: etree._Element) -> str:
    return etree.QName(el).localname


def element_path(el: etree._Element) -> str:
    """A readable path with local names, e.g. /MsgHead/MsgInfo/Sender/Organisation/Ident[2]."""
    parts: list[str] = []
    node: etree._Element | None = el
    while node is not None:
        name = local_name(node)
        parent = node.getparent()
        if parent is not None:
            same = list(parent.iterchildren(node.tag))
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))


@dataclass(frozen=True, slots=True)
class SchemaError:
    path: str  # readable path of the offending element
    line: int
    message: str  # lxml's message without {namespace} noise, fødselsnummer-like digits masked


class _LogEntry(Protocol):
    # The part of lxml's _LogEntry we use (lxml-stubs does not describe it).
    path: str | None
    line: int
    message: str


def schema_errors(schema: etree.XMLSchema, root: etree._Element) -> list[SchemaError]:
    """Validate and describe each error with a readable path; [] when valid."""
    if schema.validate(root):
        return []
    tree = root.getroottree()
    out: list[SchemaError] = []
    for entry in cast("Iterable[_LogEntry]", schema.error_log):
        path = entry.path or ""
        readable = path
        if path:
            try:
                found = tree.xpath(path)
            except etree.XPathError:
                found = None
            if isinstance(found, list) and found and isinstance(found[0], etree._Element):
                readable = element_path(found[0])
        message = schema_message(entry.message)
        out.append(SchemaError(path=readable, line=entry.line, message=message))
    return out
