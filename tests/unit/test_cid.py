"""The one Content-ID normaliser (issue 9): every spelling of a part's id is one key."""

from __future__ import annotations

import pytest

from app.core.cid import cid_uri, normalize_cid
from app.ebxml.checks import resolve_cid
from app.ebxml.mime import parse_body


@pytest.mark.parametrize(
    "spelling", ["a@b", "<a@b>", " < a@b > ", "cid:a@b", "CID:a%40b", "<cid:a@b>", "<cid:a%40b>"]
)
def test_every_spelling_names_the_same_part(spelling: str) -> None:
    assert normalize_cid(spelling) == "a@b"


def test_uri_round_trips() -> None:
    assert normalize_cid(cid_uri("<x y@z>")) == "x y@z"


def test_manifest_href_uses_the_same_normaliser() -> None:
    assert resolve_cid(" cid:a%40b") == "a@b"
    assert resolve_cid("http://x/a@b") is None


def test_mime_parts_that_normalise_alike_are_refused() -> None:
    body = (
        b"--B\r\nContent-Type: text/xml\r\nContent-ID: <soap@x>\r\n\r\n<a/>\r\n"
        b"--B\r\nContent-Type: application/octet-stream\r\nContent-ID: <p@x>\r\n\r\n1\r\n"
        b"--B\r\nContent-Type: application/octet-stream\r\nContent-ID: <cid:p%40x>\r\n\r\n2\r\n"
        b"--B--\r\n"
    )
    result = parse_body(body, 'multipart/related; type="text/xml"; boundary="B"; start="<soap@x>"')
    assert result.message is None
    assert [f.rule.id for f in result.findings] == ["EBMS-MIME-CID-DUPLICATE"]
