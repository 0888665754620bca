"""The hardened parser: no DTDs or entities, and error messages that quote nothing."""

from __future__ import annotations

import io

import pytest
from lxml import etree

from app.core.xmlparse import XmlRejected, parse_xml, parse_xml_file, xml_safe


def test_doctype_is_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>'
    with pytest.raises(XmlRejected, match="DOCTYPE"):
        parse_xml(bomb)


def test_external_entities_are_not_resolved() -> None:
    xxe = b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>'
    with pytest.raises(XmlRejected):
        parse_xml(xxe)


@pytest.mark.parametrize(
    "data",
    [b"<a>&e01854403784;</a>", b"<a b='01854403784'><c></a>", b"<a01854403784></b>"],
)
def test_parse_errors_quote_no_document_content(data: bytes) -> None:
    with pytest.raises(XmlRejected) as info:
        parse_xml(data)
    assert "018544" not in str(info.value)
    assert "ikke velformet XML" in str(info.value)


def test_whitespace_is_kept() -> None:
    root = parse_xml(b"<a>\n  <b> x </b>\n</a>")
    assert root.text == "\n  "
    assert root[0].text == " x "


def test_xml_safe_replaces_what_xml_cannot_carry() -> None:
    assert xml_safe("a\x00b\x01c\td\ne") == "a\ufffdb\ufffdc\td\ne"


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>',
        b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
        b"<a>&e01854403784;</a>",
        b"<a b='01854403784'><c></a>",
        b"",
    ],
)
def test_a_file_is_refused_as_its_bytes_are(data: bytes) -> None:
    with pytest.raises(XmlRejected) as from_bytes:
        parse_xml(data)
    with pytest.raises(XmlRejected) as from_file:
        parse_xml_file(io.BytesIO(data))
    assert "018544" not in str(from_file.value)
    assert str(from_file.value).split(":")[0] == str(from_bytes.value).split(":")[0]


def test_a_file_parses_as_its_bytes_do() -> None:
    data = b'<?xml version="1.0"?><a x="1"><!-- c --><?pi x?><b> t </b></a>'
    assert etree.tostring(parse_xml_file(io.BytesIO(data))) == etree.tostring(parse_xml(data))
