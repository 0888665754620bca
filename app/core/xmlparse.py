"""The one hardened XML parser factory.

No DTDs, no entity expansion, no network, no huge trees unless the caller opts in (with a byte
cap it has already enforced). Whitespace is kept: signatures depend on it. Comments and
processing instructions are dropped while parsing: canonicalisation leaves comments out of
what a signature covers, so `<MsgId>1111<!---->-2222</MsgId>` would verify and yet read as
`1111` if they were kept; a signed PI simply no longer verifies. The tree that is verified is
the tree that is read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import IO, Literal, TypedDict

from lxml import etree

from app.identifiers import mask_person_ids

# Characters XML 1.0 cannot carry (C0 controls but tab/LF/CR, surrogates, U+FFFE/FFFF).
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class XmlRejected(ValueError):
    """The bytes are not acceptable XML (not well-formed, or they use a forbidden feature)."""


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_DIGITS = re.compile(r"[0-9]{3,}")


def _without_values(message: str) -> str:
    """libxml2's message without what it quotes from the document (names, entity references,
    values: any of them could hold a fødselsnummer), so it can go back to the sender."""
    return _DIGITS.sub("…", _QUOTED.sub("'…'", message))


_CLARK_NS = re.compile(r"\{([^}]*)\}")


def with_prefixes(text: str, prefixes: Mapping[str, str]) -> str:
    """`{namespace}name` written `prefix:name` for the namespaces in `prefixes`; others stay."""
    return _CLARK_NS.sub(lambda m: f"{prefixes[m[1]]}:" if m[1] in prefixes else m[0], text)


def schema_message(message: str, prefixes: Mapping[str, str] | None = None) -> str:
    """A libxml2 schema message fit to show: namespaces written as `prefixes` (without them,
    dropped) and anything fødselsnummer-like masked, since such messages quote the offending
    value."""
    named = _CLARK_NS.sub("", message) if prefixes is None else with_prefixes(message, prefixes)
    return mask_person_ids(named)


def _parser(*, huge: bool) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        remove_blank_text=False,
        remove_comments=True,
        remove_pis=True,
        huge_tree=huge,
        collect_ids=False,
    )


class _StreamSettings(TypedDict):
    resolve_entities: bool
    no_network: bool
    load_dtd: bool
    remove_blank_text: bool
    remove_comments: bool
    remove_pis: bool
    huge_tree: bool
    collect_ids: bool


# `_parser`'s settings for the parsers that stream (large documents: huge_tree on).
_STREAM_SETTINGS: _StreamSettings = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "remove_blank_text": False,
    "remove_comments": True,
    "remove_pis": True,
    "huge_tree": True,
    "collect_ids": False,
}


def iterparse(
    source: IO[bytes],
    events: tuple[str, ...],
    tag: str | tuple[str, ...] | None = None,
) -> etree.iterparse:
    """The same hardened settings as `parse_xml`, as a stream of parser events (large
    documents: huge_tree on). DOCTYPEs are the caller's to refuse (`docinfo` once read)."""
    options: dict[str, object] = {} if tag is None else {"tag": tag}
    return etree.iterparse(source, events=events, **_STREAM_SETTINGS, **options)


def pull_parser(tag: str | None = None, *, namespaces: bool = False) -> etree.XMLPullParser:
    """The same hardened settings as `parse_xml`, fed chunk by chunk (large documents:
    huge_tree on); its events are the starts of elements named `tag` and, with
    `namespaces`, every namespace declaration ("start-ns"). DOCTYPEs are the caller's to
    refuse (`docinfo` once the root is read)."""
    events: tuple[Literal["start", "start-ns"], ...] = (
        ("start", "start-ns") if namespaces else ("start",)
    )
    return etree.XMLPullParser(events=events, tag=tag, **_STREAM_SETTINGS)


def parse_xml_file(source: IO[bytes], *, huge: bool = False) -> etree._Element:
    """`parse_xml` from a binary file (read from its current position), e.g. a spool: the
    document's bytes are never held whole besides its tree."""
    try:
        tree = etree.parse(source, parser=_parser(huge=huge))
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(
            f"ikke velformet XML: {_without_values(exc.msg)} (linje {exc.lineno})"
        ) from exc
    root = tree.getroot()
    if root is None:
        raise XmlRejected("tomt XML-dokument")
    doctype: str = getattr(tree.docinfo, "doctype", "")
    if doctype:
        raise XmlRejected("XML med DOCTYPE/DTD er ikke tillatt")
    return root


def parse_xml(data: bytes, *, huge: bool = False) -> etree._Element:
    """Parse bytes into an element tree, refusing DOCTYPEs (the door to entity bombs and XXE)."""
    try:
        root = etree.fromstring(data, parser=_parser(huge=huge))
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(
            f"ikke velformet XML: {_without_values(exc.msg)} (linje {exc.lineno})"
        ) from exc
    if root is None:
        raise XmlRejected("tomt XML-dokument")
    doctype: str = getattr(root.getroottree().docinfo, "doctype", "")
    if doctype:
        raise XmlRejected("XML med DOCTYPE/DTD er ikke tillatt")
    return root


def xml_safe(text: str) -> str:
    """Text with the characters XML 1.0 cannot carry replaced by U+FFFD: for values that came
    from a sender (header fields, ids) and go back out in our own XML."""
    return _NOT_XML_CHAR.sub("\ufffd", text)
