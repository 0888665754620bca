"""Streaming validation of an XPR(ipl) 56.0.0 `Melding`: the same findings as the tree path
(`validate.validate_melding`), with memory bounded by one notification plus the compact rows
the cross-notification rules need, instead of the whole document's tree.

How (issue 11):
- lxml `iterparse` reads the document; each top-level `Notifikasjon` is checked as soon as it
  ends (its own XSD pass against the same schema, where Notifikasjon is a global element; the
  row read; the per-row rules; the content digest) and then cleared. What stays is the row
  (`validate._Row`: the values a notification is stored with and the cross-notification rules
  compare) and an empty placeholder in a *skeleton* of the message.
- The skeleton (the root with its attributes, every other top-level element in full, an empty
  placeholder per notification, in document order) is checked at the end against a derived
  schema in which a Notifikasjon may hold anything. libxml2 names nodes by position
  (`/*/*[3]`), and the placeholders keep every position, so the skeleton's schema errors land
  where the whole document's would.
- Then the message-level rules, the sequence, the calendar: the same functions as the tree
  path, in the same order.

Where the two could differ, the streaming path does not guess: it hands the message to the
tree path (`_Fallback`). That is when the schema rejects the message (handling 1, a
structure or root problem), when the skeleton finds an error at a notification's own place
in the message (a misplaced Notifikasjon, whose subtree libxml2 may then not validate), when
the XML is not well-formed or has a DOCTYPE (the tree path words the finding), or when a
schema error cannot be placed. Those messages are rejected or broken anyway; a large, valid
or partly valid message never takes that way.

Notifications precede the `Kommune` elements in the schema's sequence, so the reporting
unit is known only at the end: rows are read with an empty unit and their subjects are set
once the first Kommune is known (`_set_unit`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import io
import threading
from collections.abc import Iterable, Iterator
from typing import IO, cast

from lxml import etree

from app.content.iplos import rules as R
from app.content.iplos.codes import (
    _Q,
    BRUKER,
    EVENTS,
    KOMMUNE,
    KONTAKTPERSON,
    MELDING,
    NOTIFIKASJON,
)
from app.content.iplos.digest import KeyReader, history_keys
from app.content.iplos.message import _message_findings
from app.content.iplos.rows import _check_row, _read_row, _Row
from app.content.iplos.schema import (
    _PATH_STEP,
    _SCHEMA,
    _Tree,
    _xsd_rule,
    describe_schema_error,
    safe_name,
)
from app.content.iplos.sequence import _local_date
from app.content.iplos.validate import _content_result, validate_melding
from app.content.model import ContentContext, ContentResult, HistoryKeys, RawSpool
from app.content.registry import ContentSource
from app.core import xmlparse
from app.core.findings import Consequence, Finding
from app.core.schemas import SCHEMAS_DIR, compile_schema, load_schema

_XS = "{http://www.w3.org/2001/XMLSchema}"
_local = threading.local()


class _Fallback(Exception):
    """The streaming path cannot promise the tree path's exact answer for this message."""


def _skeleton_schema() -> etree.XMLSchema:
    """The IPLOS schema with a Notifikasjon that may hold anything (the placeholders are
    empty) and without the notifikasjonGUID uniqueness (the rules report duplicates; the
    schema's own finding for it is never shown, see `validate._xsd_rule`). One per thread,
    like `load_schema`: a schema keeps its error log."""
    schema: etree.XMLSchema | None = getattr(_local, "skeleton", None)
    if schema is not None:
        return schema
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    doc = etree.parse(str(SCHEMAS_DIR / _SCHEMA), parser)
    xsd = doc.getroot()
    lax = etree.fromstring(
        f'<xs:complexType xmlns:xs="{_XS[1:-1]}"><xs:sequence>'
        '<xs:any processContents="skip" minOccurs="0" maxOccurs="unbounded"/>'
        '</xs:sequence><xs:anyAttribute processContents="skip"/></xs:complexType>'
    )
    for el in xsd.iterchildren(_XS + "element"):
        name = el.get("name")
        if name == "Notifikasjon":
            for child in list(el):
                el.remove(child)
            el.append(lax)
        elif name == "Melding":
            for unique in el.iterchildren(_XS + "unique"):
                if unique.get("name") == "NotifikasjonP_ID":
                    el.remove(unique)
                    break
    schema = compile_schema(doc)
    _local.skeleton = schema
    return schema


def _entries(schema: etree.XMLSchema) -> Iterable[etree._LogEntry]:
    # lxml-stubs do not declare _ErrorLog iterable; it is.
    return cast("Iterable[etree._LogEntry]", schema.error_log)


def _node_below(top: etree._Element, path: str | None) -> etree._Element:
    """The element at libxml2's path (`/*/*[2]/*`) in a subtree validated as its own
    document, whose root is `top`."""
    if not path or not (path == "/*" or path.startswith("/*/")):
        raise _Fallback
    node = top
    for step in path.split("/")[2:]:
        m = _PATH_STEP.fullmatch(step)
        if m is None:
            raise _Fallback
        pos = int(m.group(1) or 1) - 1
        kids = [c for c in node if isinstance(c.tag, str)]
        if not 0 <= pos < len(kids):
            raise _Fallback
        node = kids[pos]
    return node


def _location_below(top: etree._Element, node: etree._Element, base: str) -> str:
    """`base` (the notification's own location) followed by the names down to `node`."""
    parts: list[str] = []
    current: etree._Element | None = node
    while current is not None and current is not top:
        parts.append(safe_name(etree.QName(current).localname))
        current = current.getparent()
    return base + "".join("/" + p for p in reversed(parts))


def _row_schema_findings(schema: etree.XMLSchema, el: etree._Element, index: int) -> list[Finding]:
    """One notification's schema errors against `schema` (the IPLOS schema), placed and
    worded as `validate._xsd_report` places and words them for the whole document. Any that
    rejects the message: `_Fallback`."""
    if schema.validate(el):
        return []
    base = f"/Melding/Notifikasjon[{index}]"
    found: list[Finding] = []
    logged = False
    for entry in _entries(schema):
        problem = describe_schema_error(entry.message.replace(_Q, ""))
        if problem.follow_up:
            continue
        logged = True
        node = _node_below(el, entry.path)
        rule = _xsd_rule(problem, True)
        if rule is None:
            continue
        if rule.consequence is Consequence.REJECT_MESSAGE:
            raise _Fallback
        where = _location_below(el, node, base)
        attribute = problem.attribute or problem.missing_attribute
        location = f"{where}/@{attribute}" if attribute else where
        found.append(Finding(rule, location, f"Skjemafeil i {location}: {problem.text}."))
    if not logged:
        raise _Fallback
    return found


def _skeleton_findings(skeleton: etree._Element) -> list[Finding]:
    """The schema's findings outside the notifications (warnings only; anything else is the
    tree path's to answer)."""
    schema = _skeleton_schema()
    if schema.validate(skeleton):
        return []
    tree = _Tree.of(skeleton)
    found: list[Finding] = []
    logged = False
    for entry in _entries(schema):
        problem = describe_schema_error(entry.message.replace(_Q, ""))
        if problem.follow_up:
            continue
        logged = True
        at = tree.node_at(entry.path)
        if at is None:
            raise _Fallback
        node, top_pos = at
        if top_pos is not None and tree.top[top_pos].tag == NOTIFIKASJON:
            raise _Fallback  # at a notification's own place: the tree path decides
        rule = _xsd_rule(problem, False)
        if rule is None:
            continue
        if rule.consequence is Consequence.REJECT_MESSAGE:
            raise _Fallback
        where = tree.location(node, top_pos)
        attribute = problem.attribute or problem.missing_attribute
        location = f"{where}/@{attribute}" if attribute else where
        found.append(Finding(rule, location, f"Skjemafeil i {location}: {problem.text}."))
    if not logged:
        raise _Fallback
    return found


class _Walk:
    """The top-level children of a Melding, one at a time, and its root once known."""

    def __init__(self) -> None:
        self.root: etree._Element | None = None

    def parsed(
        self, source: bytes | IO[bytes], *, in_msghead: bool = False
    ) -> Iterator[etree._Element]:
        """From bytes or a binary file: each top-level child once it has ended; cleared (and
        its earlier siblings removed) when the consumer asks for the next. `in_msghead`: the
        document is a MsgHead, and the Melding is its content where the MsgHead reader finds
        it (`_ContentPlace`); what follows the Melding is not read."""
        stream: IO[bytes] = io.BytesIO(source) if isinstance(source, bytes) else source
        events = xmlparse.iterparse(stream, ("start", "end"))
        place = _ContentPlace() if in_msghead else None
        depth = 0
        base: int | None = None  # the Melding's depth once it started
        try:
            # Two loops over the one stream: up to the Melding's start, every event is
            # checked for it; then (the bulk of a large message) only the depth counts.
            for event, el in events:
                if event == "start":
                    depth += 1
                    if place.starts(el, depth) if place is not None else depth == 1:
                        self._begin(el)
                        base = depth
                        break
                else:
                    depth -= 1
                    if place is not None:
                        place.ends(depth)
            if base is None:
                raise _Fallback  # no content where it should be: the tree path says so
            for event, el in events:
                if event == "start":
                    depth += 1
                    continue
                depth -= 1
                if depth != base:
                    if in_msghead and depth == base - 1:
                        return  # the Melding inside MsgHead ended; MsgHead was read before
                    continue  # (a document of its own is read to its end: junk after it)
                yield el
                el.clear()
                parent = el.getparent()
                while parent is not None and el.getprevious() is not None:
                    del parent[0]
        except etree.XMLSyntaxError as exc:
            raise _Fallback from exc

    def tree(self, root: etree._Element) -> Iterator[etree._Element]:
        """From an element already parsed (MsgHead's Content): its children, left as they are."""
        self._begin(root)
        for child in root:
            if isinstance(child.tag, str):
                yield child

    def _begin(self, root: etree._Element) -> None:
        if root.tag != MELDING:
            raise _Fallback  # the schema's root finding: the tree path words it
        if getattr(root.getroottree().docinfo, "doctype", ""):
            raise _Fallback  # parse_xml refuses it: the tree path words it
        self.root = root


_MH = "{http://www.kith.no/xmlstds/msghead/2006-05-24}"


class _ContentPlace:
    """Where `app.msghead.parse._content` finds the content, followed through start and end
    events: the first element inside the first Document's (MsgHead/Document or
    MsgHead/PatientReport/Document) first RefDoc's first Content."""

    def __init__(self) -> None:
        self._path: list[str] = []
        self._document_seen = False
        self._in_document: int | None = None  # depth of the first Document
        self._refdoc_seen = False
        self._in_refdoc: int | None = None
        self._content_seen = False
        self._in_content: int | None = None

    def starts(self, el: etree._Element, depth: int) -> bool:
        """True for the content element (its start event at `depth`)."""
        tag = el.tag if isinstance(el.tag, str) else ""
        self._path.append(tag)
        if self._in_content is not None and depth == self._in_content + 1:
            return True
        if tag == _MH + "Document" and not self._document_seen:
            if self._path[:-1] in ([_MH + "MsgHead"], [_MH + "MsgHead", _MH + "PatientReport"]):
                self._document_seen = True
                self._in_document = depth
        elif tag == _MH + "RefDoc" and self._in_document == depth - 1 and not self._refdoc_seen:
            self._refdoc_seen = True
            self._in_refdoc = depth
        elif tag == _MH + "Content" and self._in_refdoc == depth - 1 and not self._content_seen:
            self._content_seen = True
            self._in_content = depth
        return False

    def ends(self, depth: int) -> None:
        """An element at `depth` + 1 ended."""
        self._path.pop()
        if self._in_content == depth + 1:
            self._in_content = None  # Content held no element: nothing to read
        if self._in_refdoc == depth + 1:
            self._in_refdoc = None
        if self._in_document == depth + 1:
            self._in_document = None


def _skeleton_root(root: etree._Element) -> etree._Element:
    """An empty copy of the root: its name, namespaces and attributes."""
    nsmap = cast("dict[str, str]", root.nsmap)
    skeleton = etree.Element(MELDING, nsmap=nsmap)
    for name, value in root.attrib.items():
        skeleton.set(name, value)
    return skeleton


def _set_unit(rows: list[_Row], unit: str) -> None:
    """Rows are read before the Kommune elements: give them (and the findings made so far)
    the reporting unit. A row's subject is made from its unit when a finding needs it."""
    for row in rows:
        if row.unit == unit:
            continue
        row.unit = unit
        if row.findings:
            subject = row.subject
            row.findings = [dataclasses.replace(f, subject=subject) for f in row.findings]


def _stream(children: Iterator[etree._Element], walk: _Walk, ctx: ContentContext) -> ContentResult:
    rows: list[_Row] = []
    contact_els: list[etree._Element] = []
    kommuner: list[str] = []
    skeleton: etree._Element | None = None
    extracted_on = _local_date(ctx.extracted_at)
    schema = load_schema(_SCHEMA)  # once, not per notification
    spool = RawSpool()  # the values as sent, out of memory until the register store's read
    for el in children:
        if skeleton is None:
            assert walk.root is not None
            skeleton = _skeleton_root(walk.root)
        tag = el.tag
        if tag == NOTIFIKASJON:
            index = len(rows) + 1
            xsd = _row_schema_findings(schema, el, index)
            row = _read_row(index, el, "", spool)
            for finding in xsd:
                row.add(finding.rule, finding.location, finding.detail)
            if not row.dropped:
                _check_row(row, ctx, extracted_on)
                if not row.fid and row.event:
                    row.add(R.FID_MISSING, f"{row.base}/Bruker/@fid", "fid er tom.")
            rows.append(row)
            etree.SubElement(skeleton, NOTIFIKASJON)
            continue
        kept = copy.deepcopy(el)
        skeleton.append(kept)
        if tag == KONTAKTPERSON:
            contact_els.append(kept)
        elif tag == KOMMUNE:
            kommuner.append(el.get("kommuneNr") or "")
    if skeleton is None:
        if walk.root is None:
            raise _Fallback
        skeleton = _skeleton_root(walk.root)
    findings = _skeleton_findings(skeleton)
    if not kommuner:
        raise _Fallback  # the schema requires one; unreachable after a valid skeleton
    unit = kommuner[0]
    _set_unit(rows, unit)
    message = _message_findings(skeleton, contact_els, kommuner, ctx)
    findings.extend(message.findings)
    return _content_result(
        findings,
        rows,
        unit=unit,
        kommuner=kommuner,
        message=message,
        melding=skeleton,
        contact_els=contact_els,
        ctx=ctx,
    )


def stream_only(
    source: ContentSource, ctx: ContentContext, *, in_msghead: bool = False
) -> ContentResult | None:
    """The streaming path alone: None where it hands over to the tree path (a message the
    schema rejects, XML that does not parse; see the module's docstring). Reads a binary file
    from its current position; `in_msghead`: the Melding inside a MsgHead document."""
    walk = _Walk()
    children = (
        walk.tree(source)
        if isinstance(source, etree._Element)
        else walk.parsed(source, in_msghead=in_msghead)
    )
    try:
        with _collector_paused():
            return _stream(children, walk, ctx)
    except _Fallback:
        return None


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a message is streamed. Its rows pile up (about
    half a million small objects for 100 000 notifications) and each of the collector's full
    passes walks all of them again: a fifth of the time. The switch is the process's: cycles
    made meanwhile (here or in other threads) are collected once it is back on; reference
    counting frees everything else as usual. Only the caller that turned it off turns it on
    again (another thread may have paused it first, or the process keeps it off on purpose)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def validate_msghead_content(
    source: bytes | IO[bytes], ctx: ContentContext
) -> ContentResult | None:
    """The check of the `Melding` inside a MsgHead document (bytes or a binary file, e.g.
    the decrypted payload spooled), read as a stream: what `validate_melding` finds on
    `read_msghead(...).msghead.content`. None when the MsgHead has no content there (the
    MsgHead reader reports that)."""
    start = None if isinstance(source, bytes) else source.tell()
    result = stream_only(source, ctx, in_msghead=True)
    if result is not None:
        return result
    from app.msghead.parse import read_msghead

    if not isinstance(source, bytes):
        assert start is not None
        source.seek(start)
    data = source if isinstance(source, bytes) else source.read()
    head = read_msghead(data, huge=True).msghead
    if head is None or head.content is None:
        return None
    return validate_melding(head.content, ctx)


def validate_stream(source: ContentSource, ctx: ContentContext) -> ContentResult:
    """`validate.validate_melding`'s findings and result, read as a stream: from bytes or a
    binary file (e.g. a spooled temporary file, read from its current position) the document
    is never held as a tree. An element (MsgHead's Content) is walked the same way, untouched.
    """
    start = source.tell() if not isinstance(source, bytes | etree._Element) else None
    result = stream_only(source, ctx)
    if result is not None:
        return result
    if isinstance(source, bytes | etree._Element):
        return validate_melding(source, ctx)
    assert start is not None
    source.seek(start)
    return validate_melding(source.read(), ctx)


def stream_history_keys(source: ContentSource) -> HistoryKeys:
    """`validate.history_keys` from bytes or a binary file without building the tree (an
    element is read as it is). A document that does not parse gives the keys read so far:
    its validation reports it."""
    if isinstance(source, etree._Element):
        return history_keys(source)
    reader = KeyReader()
    stream: IO[bytes] = io.BytesIO(source) if isinstance(source, bytes) else source
    events = xmlparse.iterparse(stream, ("end",), tag=(NOTIFIKASJON, BRUKER, *EVENTS))
    try:
        for _, el in events:
            if el.tag == BRUKER:
                reader.bruker(el)
                continue
            if el.tag != NOTIFIKASJON:
                reader.event(el)
                continue
            reader.notification(el)
            parent = el.getparent()
            # a Notifikasjon of the root Melding: read, so cleared with its earlier siblings
            # (iterparse's `root` is set only at the end: comparing with it kept the whole
            # tree, 480 MB for 100 000 notifications)
            if parent is not None and parent.getparent() is None:
                el.clear()
                while el.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError:
        pass
    return reader.keys()


def msghead_history_keys(source: IO[bytes]) -> HistoryKeys | None:
    """`validate.history_keys` of the `Melding` inside a MsgHead document (a binary file, read
    from its current position) as a stream: what it gives on `read_msghead(...).msghead.content`,
    one top-level element of the Melding at a time. None where the stream cannot say (no
    Melding where the MsgHead reader finds the content, XML that does not parse): the caller
    reads the tree."""
    walk = _Walk()
    reader = KeyReader()  # one set per kind for the message, not four per element
    try:
        for child in walk.parsed(source, in_msghead=True):
            reader.read(child)
    except _Fallback:
        return None
    return reader.keys()
