"""MIME (SOAP with attachments) parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.findings import Consequence
from app.ebxml import rules
from app.ebxml.build import Cte
from app.ebxml.mime import MimeResult, parse_body, parse_eml
from tests.budgets import examples
from tests.unit.ebxml_support import CMS_LIKE, PKCS7, business_message, sample

CTES: list[Cte] = ["binary", "8bit", "7bit", "base64", "quoted-printable"]
NAV_SOAP_CID = "ZTTPT8UKUKU4.U2O3MHW7UL03@speare.no"
NAV_PAYLOAD_CID = "3CTGI8UKUKU4.ADHEUDMDCY3Q3@speare.no"


def _ids(result: MimeResult) -> list[str]:
    return [f.rule.id for f in result.findings]


def _multipart(
    parts: list[bytes], boundary: str = "b1", start: str | None = "<s@x>"
) -> tuple[bytes, str]:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    body += b"--" + boundary.encode() + b"--\r\n"
    ctype = f'multipart/related; type="text/xml"; boundary="{boundary}"'
    if start:
        ctype += f'; start="{start}"'
    return body, ctype


SOAP_PART = b"Content-Type: text/xml\r\nContent-ID: <s@x>\r\n\r\n<e/>"
PAYLOAD_PART = b"Content-Type: application/octet-stream\r\nContent-ID: <p@x>\r\n\r\n\x00\x01"


def test_nav_eml_parses_into_soap_part_and_der_attachment(reference_dir: Path) -> None:
    result = parse_eml(sample(reference_dir, "nav-real-smtp-message.eml"))
    assert result.findings == ()
    msg = result.message
    assert msg is not None
    assert msg.soap_content_id == NAV_SOAP_CID
    assert msg.soap.startswith(b"<SOAP:Envelope ")
    assert msg.soap.endswith(b"</SOAP:Envelope>")
    assert len(msg.attachments) == 1
    att = msg.attachments[0]
    assert att.content_id == NAV_PAYLOAD_CID
    assert att.media_type == "application/pkcs7-mime"
    assert 'smime-type="enveloped-data"' in att.content_type
    assert att.data[:4] == b"\x30\x82\x10\x88"  # DER SEQUENCE of 0x1088 bytes
    assert len(att.data) == 0x1088 + 4
    assert msg.attachment(NAV_PAYLOAD_CID) is att
    assert msg.attachment_map == {NAV_PAYLOAD_CID: att.data}


@pytest.mark.parametrize("payload_cte", CTES[:2] + CTES[3:])
@pytest.mark.parametrize("soap_cte", CTES)
def test_round_trip_every_cte_gives_exact_bytes(soap_cte: Cte, payload_cte: Cte) -> None:
    built = business_message(soap_cte=soap_cte, payload_cte=payload_cte)
    result = parse_body(built.body, built.content_type)
    assert result.findings == ()
    assert result.message is not None
    assert result.message.soap == built.soap
    assert result.message.soap_content_id == built.soap_content_id
    assert [a.data for a in result.message.attachments] == [CMS_LIKE]
    assert result.message.attachments[0].content_type == PKCS7


def test_lf_only_line_endings_are_accepted() -> None:
    built = business_message(soap_cte="base64", payload_cte="base64")
    result = parse_body(built.body.replace(b"\r\n", b"\n"), built.content_type)
    assert result.findings == ()
    assert result.message is not None
    assert result.message.soap == built.soap
    assert result.message.attachments[0].data == CMS_LIKE


def test_preamble_and_epilogue_are_ignored() -> None:
    body, ctype = _multipart([SOAP_PART, PAYLOAD_PART])
    result = parse_body(b"This is a preamble\r\n" + body + b"epilogue\r\n", ctype)
    assert result.findings == ()
    assert result.message is not None
    assert result.message.soap == b"<e/>"
    assert result.message.attachments[0].data == b"\x00\x01"


def test_without_start_parameter_the_first_part_is_the_envelope() -> None:
    body, ctype = _multipart([SOAP_PART, PAYLOAD_PART], start=None)
    result = parse_body(body, ctype)
    assert result.message is not None
    assert result.message.soap == b"<e/>"


def test_bare_text_xml_envelope_has_no_attachments() -> None:
    result = parse_body(b"<e/>", "text/xml; charset=utf-8")
    assert result.findings == ()
    assert result.message is not None
    assert result.message.soap == b"<e/>"
    assert result.message.attachments == ()


def test_eml_with_single_base64_text_xml_body_is_decoded() -> None:
    eml = b"Content-Type: text/xml\r\nContent-Transfer-Encoding: base64\r\n\r\nPGUvPg==\r\n"
    result = parse_eml(eml)
    assert result.message is not None
    assert result.message.soap == b"<e/>"


def _one(result: MimeResult, rule_id: str) -> None:
    assert result.message is None
    assert _ids(result) == [rule_id]
    f = result.findings[0]
    assert f.rule.consequence is Consequence.MESSAGE_ERROR
    assert f.rule.ebms_error_code == rules.MIME_PROBLEM
    assert f.detail


def test_missing_content_type() -> None:
    _one(parse_body(b"<e/>", None), "EBMS-MIME-CONTENT-TYPE")


def test_unsupported_content_type() -> None:
    _one(parse_body(b"<e/>", "application/json"), "EBMS-MIME-CONTENT-TYPE")


def test_missing_boundary_parameter() -> None:
    _one(parse_body(b"--x\r\n", 'multipart/related; type="text/xml"'), "EBMS-MIME-BOUNDARY")


def test_boundary_not_in_body() -> None:
    body, ctype = _multipart([SOAP_PART])
    _one(parse_body(body, ctype.replace('"b1"', '"other"')), "EBMS-MIME-BOUNDARY")


def test_truncated_body_without_closing_delimiter() -> None:
    body, ctype = _multipart([SOAP_PART, PAYLOAD_PART])
    _one(parse_body(body[: body.rindex(b"--b1--")], ctype), "EBMS-MIME-BOUNDARY")


def test_a_first_delimiter_with_more_on_its_line_is_refused() -> None:
    body, ctype = _multipart([SOAP_PART])
    _one(parse_body(b"--b1x" + body[len(b"--b1") :], ctype), "EBMS-MIME-BOUNDARY")


def test_a_line_that_only_starts_like_the_delimiter_is_content() -> None:
    soap = SOAP_PART + b"\r\n--b1-and-more"
    body, ctype = _multipart([soap, PAYLOAD_PART])
    result = parse_body(body, ctype)
    assert result.findings == ()
    assert result.message is not None
    assert result.message.soap == b"<e/>\r\n--b1-and-more"


def test_a_part_without_headers_is_an_attachment_without_content_id() -> None:
    body, ctype = _multipart([SOAP_PART, b"\r\nno headers"], start=None)
    _one(parse_body(body, ctype), "EBMS-MIME-CID-MISSING")


def test_too_many_parts() -> None:
    body, ctype = _multipart(
        [SOAP_PART] + [PAYLOAD_PART.replace(b"p@x", b"p%d@x" % i) for i in range(4)]
    )
    _one(parse_body(body, ctype, max_parts=3), "EBMS-MIME-TOO-MANY-PARTS")


def test_oversized_part_headers() -> None:
    big = b"X-Filler: " + b"a" * 500 + b"\r\n"
    body, ctype = _multipart([SOAP_PART, big + PAYLOAD_PART])
    _one(parse_body(body, ctype, max_part_header_bytes=256), "EBMS-MIME-PART-MALFORMED")


def test_unsupported_transfer_encoding() -> None:
    part = PAYLOAD_PART.replace(b"\r\n\r\n", b"\r\nContent-Transfer-Encoding: uuencode\r\n\r\n")
    body, ctype = _multipart([SOAP_PART, part])
    _one(parse_body(body, ctype), "EBMS-MIME-CTE-UNSUPPORTED")


def test_undecodable_base64() -> None:
    part = b"Content-ID: <p@x>\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJDR"
    body, ctype = _multipart([SOAP_PART, part])
    _one(parse_body(body, ctype), "EBMS-MIME-CTE-INVALID")


def test_start_part_not_found() -> None:
    body, ctype = _multipart([SOAP_PART, PAYLOAD_PART], start="<nope@x>")
    _one(parse_body(body, ctype), "EBMS-MIME-START-MISSING")


def test_start_part_not_xml() -> None:
    body, ctype = _multipart([SOAP_PART.replace(b"text/xml", b"text/plain"), PAYLOAD_PART])
    _one(parse_body(body, ctype), "EBMS-MIME-START-TYPE")


def test_attachment_without_content_id() -> None:
    body, ctype = _multipart([SOAP_PART, PAYLOAD_PART.replace(b"Content-ID: <p@x>\r\n", b"")])
    _one(parse_body(body, ctype), "EBMS-MIME-CID-MISSING")


def test_duplicate_content_id() -> None:
    body, ctype = _multipart([SOAP_PART, PAYLOAD_PART, PAYLOAD_PART])
    _one(parse_body(body, ctype), "EBMS-MIME-CID-DUPLICATE")


def _check_result(result: MimeResult) -> None:
    assert (result.message is None) == bool(result.findings)
    for f in result.findings:
        assert f.rule in rules.RULES
        assert f.detail


CONTENT_TYPES = st.sampled_from(
    [
        None,
        "",
        "text/xml",
        'multipart/related; type="text/xml"; boundary="b1"; start="<s@x>"',
        "multipart/related; boundary=b1",
        "multipart/related; boundary=",
        'multipart/related; boundary="' + "x" * 300 + '"',
        "multipart/related; boundary*=utf-8''b1",
        "\x00;;;=",
    ]
)


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), CONTENT_TYPES)
def test_random_bytes_never_raise(body: bytes, content_type: str | None) -> None:
    _check_result(parse_body(body, content_type))
    _check_result(parse_eml(body))


_BUILT = business_message(soap_cte="base64", payload_cte="base64", payload=b"\x30\x03abc")


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(_BUILT.body)),
            st.integers(min_value=0, max_value=40),
            st.binary(max_size=12),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_mime_never_raises(edits: list[tuple[int, int, bytes]]) -> None:
    body = _BUILT.body
    for pos, cut, insert in edits:
        body = body[:pos] + insert + body[pos + cut :]
    _check_result(parse_body(body, _BUILT.content_type))
    _check_result(parse_eml(b"Content-Type: " + _BUILT.content_type.encode() + b"\r\n\r\n" + body))
