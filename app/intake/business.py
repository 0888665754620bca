"""The business step of the intake: the MsgHead read (as a tree or a stream) and checked, then
the content checked by its format against the history it needs."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import IO

from lxml import etree

from app.content import builtin
from app.content.model import ContentContext, ContentResult, HistoryKeys
from app.content.registry import ContentFormat, KeyCollector
from app.core.findings import Consequence, Finding
from app.intake.reading import read_all
from app.msghead.checks import check_msghead
from app.msghead.model import MsgHead, MsgHeadReading
from app.msghead.parse import read_msghead, read_msghead_stream


@dataclass(frozen=True, slots=True)
class Business:
    msghead: MsgHead | None
    findings: tuple[Finding, ...]
    content: ContentResult | None


@dataclass(frozen=True, slots=True)
class BusinessHead:
    """The MsgHead read and checked; `fmt` is the content format to run next (None when the
    message stops here), `keys` what history that content needs. `source`: the spool the
    content is streamed from (`fmt.check_in_msghead`); None when it is read from the tree
    (`msghead.content`)."""

    msghead: MsgHead | None
    findings: tuple[Finding, ...]
    fmt: ContentFormat | None
    keys: HistoryKeys
    source: IO[bytes] | None = None


# A spooled MsgHead of at least this many bytes is read as a stream: its header fields from
# an iterparse that drops the content's elements as they end, the content by the format's
# streaming check. 0: every spool (the same findings either way; one path to test).
STREAM_MIN_BYTES = 0


class _Collected:
    """The history keys of each content root a streamed MsgHead holds, collected by the
    format that reads that root (`ContentFormat.key_collector`) as the stream ends its
    children: the keys' own pass over the document is then not needed."""

    def __init__(self) -> None:
        self._by_root: dict[etree._Element, tuple[ContentFormat, KeyCollector] | None] = {}

    def child(self, el: etree._Element) -> None:
        root = el.getparent()
        if root is None:
            return
        if root not in self._by_root:
            self._by_root[root] = _collector_for(root)
        found = self._by_root[root]
        if found is not None:
            found[1].read(el)

    def keys(self, fmt: ContentFormat, content: etree._Element) -> HistoryKeys | None:
        found = self._by_root.get(content)
        if found is None or found[0] is not fmt:
            return None
        return found[1].keys()


def _collector_for(root: etree._Element) -> tuple[ContentFormat, KeyCollector] | None:
    for fmt in builtin.formats():
        if fmt.key_collector is not None and root.tag == fmt.root_tag:
            return fmt, fmt.key_collector()
    return None


def _read_head(
    content: bytes | IO[bytes],
) -> tuple[MsgHeadReading, IO[bytes] | None, _Collected | None]:
    """MsgHead read: from a spool as a stream when it is large enough and the streamed
    reading can promise the tree's answer (then the spool and the keys collected on the way
    are returned), else as a tree."""
    if isinstance(content, bytes):
        return read_msghead(content, huge=True), None, None
    content.seek(0, 2)
    size = content.tell()
    content.seek(0)
    if size >= STREAM_MIN_BYTES:
        collected = _Collected()
        streamed = read_msghead_stream(content, collected.child)
        content.seek(0)
        if streamed is not None:
            return streamed, content, collected
    return read_msghead(read_all(content), huge=True), None, None


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadExpectations:
    """What a MsgHead is judged against: the time received, the addresses the transport
    named, the registered party's HER-id, KPR's own HER-ids and the clock skew allowed."""

    now: datetime
    ebxml_from_her: str | None = None
    ebxml_to_her: str | None = None
    party_her: str | None = None
    our_her_ids: Collection[str]
    skew: timedelta


def read_business(content: bytes | IO[bytes], expect: HeadExpectations) -> BusinessHead:
    """MsgHead: structure, then the context checks; picks the content format it names.
    `content`: the MsgHead's bytes, or a spool holding them (at position 0)."""
    reading, source, collected = _read_head(content)
    head = reading.msghead
    findings = list(reading.findings)
    if head is None:
        return BusinessHead(None, tuple(findings), None, HistoryKeys())
    supported = {f.msg_type for f in builtin.formats()}
    findings.extend(
        check_msghead(
            head,
            now=expect.now,
            supported_types=supported,
            ebxml_from_her_id=expect.ebxml_from_her,
            ebxml_to_her_id=expect.ebxml_to_her,
            party_her_id=expect.party_her,
            our_her_ids=expect.our_her_ids,
            max_clock_skew=expect.skew,
        )
    )
    fmt = builtin.lookup(head.type_v) if head.type_v else None
    if (
        fmt is None
        or head.content is None
        or any(f.rule.consequence is Consequence.REJECT_MESSAGE for f in findings)
    ):
        return BusinessHead(head, tuple(findings), None, HistoryKeys())
    if source is not None and fmt.check_in_msghead is not None:
        keys = collected.keys(fmt, head.content) if collected is not None else None
        if keys is None:
            keys = _streamed_keys(fmt, source)
        if keys is not None:
            return BusinessHead(head, tuple(findings), fmt, keys, source)
    element: etree._Element = head.content
    if source is not None:  # the format reads the tree: the MsgHead's, whole
        tree = _tree_head(source)
        assert tree is not None  # read as the stream was
        assert tree.content is not None
        element = tree.content
        head = replace(head, content=element, signature=tree.signature, root=tree.root)
    keys = fmt.history_keys(element) if fmt.history_keys else HistoryKeys()
    return BusinessHead(head, tuple(findings), fmt, keys)


def _streamed_keys(fmt: ContentFormat, source: IO[bytes]) -> HistoryKeys | None:
    if fmt.history_keys is None:
        return HistoryKeys()
    if fmt.history_keys_in_msghead is None:
        return None
    source.seek(0)
    try:
        return fmt.history_keys_in_msghead(source)
    finally:
        source.seek(0)


def _tree_head(source: IO[bytes]) -> MsgHead | None:
    """The MsgHead of a spool read as a whole tree (where the streaming path hands over)."""
    return read_msghead(read_all(source), huge=True).msghead


def check_content(read: BusinessHead, context: ContentContext) -> Business:
    """The content format's schema and rules, after `read_business`: streamed from the spool
    when `read_business` read it so, else on MsgHead's Content element."""
    if read.fmt is None or read.msghead is None or read.msghead.content is None:
        return Business(read.msghead, read.findings, None)
    gen_date = read.msghead.gen_date
    if context.extracted_at is None and gen_date is not None:
        # The extraction is as late as GenDate, but never after we received it (a clock ahead)
        context = replace(context, extracted_at=min(gen_date, context.now))
    result: ContentResult | None = None
    if read.source is not None and read.fmt.check_in_msghead is not None:
        read.source.seek(0)
        try:
            result = read.fmt.check_in_msghead(read.source, context)
        finally:
            read.source.seek(0)
    if result is None:
        element: etree._Element | None = read.msghead.content
        if read.source is not None:
            tree = _tree_head(read.source)
            element = tree.content if tree is not None else None
        assert element is not None  # read as `read_business` read it
        result = read.fmt.check(element, context)
    return Business(read.msghead, (*read.findings, *result.findings), result)


def check_business(
    content: bytes | IO[bytes], expect: HeadExpectations, context: ContentContext
) -> Business:
    """MsgHead, then the content format it names, with a history given up front (offline).
    From a spool (at position 0) both are read as streams, as the intake reads them."""
    return check_content(read_business(content, expect), context)
