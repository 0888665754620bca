"""The registry of content formats, keyed by MsgHead `MsgInfo/Type` and by the content root
namespace. A new format (the annual IPLOS 3.x, KPR_IDE) is one module that builds a
`ContentFormat` plus its schema in `schemas/`, added to `_builtin_formats` in
app/content/builtin.py (which imports the plug-ins; they import this module). Types not found
here are the caller's to answer (AppRec T10)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from lxml import etree

from app.content.model import ContentContext, ContentResult, HistoryKeys

# What a content check reads: the content's bytes, a binary file holding them (e.g. a spooled
# temporary file, read from its current position: the check may stream it), or the element
# already parsed inside MsgHead's Content.
ContentSource = bytes | IO[bytes] | etree._Element
CheckContent = Callable[[ContentSource, ContentContext], ContentResult]
ReadHistoryKeys = Callable[[ContentSource], HistoryKeys]
# The same, for the content inside a whole MsgHead document in a binary file (read from its
# current position), streamed: None where the format cannot promise the tree path's answer
# (the caller then reads the MsgHead's tree and uses `check` / `history_keys` on its content).
CheckInMsgHead = Callable[[IO[bytes], ContentContext], ContentResult | None]
ReadHistoryKeysInMsgHead = Callable[[IO[bytes]], HistoryKeys | None]


class KeyCollector(Protocol):
    """The history keys of a content, collected from its root's children one at a time as
    the MsgHead stream ends them (`app.msghead.parse.read_msghead_stream`)."""

    def read(self, element: etree._Element) -> None: ...

    def keys(self) -> HistoryKeys: ...


@dataclass(frozen=True, slots=True)
class ContentFormat:
    msg_type: str  # MsgInfo/Type V, e.g. KPR_IPL
    namespace: str  # namespace of the content root element
    root: str  # local name of the content root element
    title: str
    schema_path: Path  # the project's own XSD for this format
    check: CheckContent  # XSD + every rule; pure (IPLOS: streaming, app/content/iplos/stream.py)
    history_keys: ReadHistoryKeys | None = None  # what history rows a message needs
    # Streaming over the MsgHead document (issue 11); a format without them is read as a tree.
    check_in_msghead: CheckInMsgHead | None = None
    history_keys_in_msghead: ReadHistoryKeysInMsgHead | None = None
    # the same keys collected during the MsgHead's own streamed reading (one pass fewer)
    key_collector: Callable[[], KeyCollector] | None = None

    @property
    def root_tag(self) -> str:
        return f"{{{self.namespace}}}{self.root}"
