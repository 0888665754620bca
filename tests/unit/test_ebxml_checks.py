"""The pure transport checks: receiver, TimeToLive, Manifest."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.ebxml.checks import Receiver, check_header, check_manifest, resolve_cid
from app.ebxml.envelope import EbmsHeader, ManifestReference, PartyId, parse_envelope
from app.ebxml.mime import MimeMessage, parse_body, parse_eml
from tests.unit.ebxml_support import KPR_HER, NOW, business_message, sample

RECEIVERS = {KPR_HER: "pilot", "122612": "production"}


def _parsed(**kwargs: object) -> tuple[EbmsHeader, MimeMessage]:
    built = business_message(**kwargs)  # type: ignore[arg-type]
    mime = parse_body(built.body, built.content_type).message
    assert mime is not None
    header = parse_envelope(mime.soap).header
    assert header is not None
    return header, mime


def _ids(header: EbmsHeader, mime: MimeMessage, now: datetime = NOW) -> list[str]:
    return [f.rule.id for f in check_header(header, mime, receivers=RECEIVERS, now=now).findings]


def test_clean_message_passes_and_is_tagged_with_its_address() -> None:
    header, mime = _parsed()
    result = check_header(header, mime, receivers=RECEIVERS, now=NOW)
    assert result.findings == ()
    assert result.receiver == Receiver(KPR_HER, "pilot")


def test_nav_sample_passes_when_its_to_is_ours(reference_dir: Path) -> None:
    mime = parse_eml(sample(reference_dir, "nav-real-smtp-message.eml")).message
    assert mime is not None
    header = parse_envelope(mime.soap).header
    assert header is not None
    result = check_header(header, mime, receivers={"79768": "test"}, now=NOW)
    assert result.findings == ()
    assert result.receiver == Receiver("79768", "test")


def test_unknown_receiver() -> None:
    header, mime = _parsed(to_her="999999")
    assert _ids(header, mime) == ["EBMS-TO-UNKNOWN"]


def test_receiver_must_be_a_her_party_id() -> None:
    header, mime = _parsed()
    enh_only = replace(
        header, to_party=replace(header.to_party, party_ids=(PartyId(KPR_HER, "ENH"),))
    )
    assert _ids(enh_only, mime) == ["EBMS-TO-UNKNOWN"]


def test_time_to_live_passed() -> None:
    header, mime = _parsed(time_to_live=NOW - timedelta(seconds=1))
    assert _ids(header, mime) == ["EBMS-TTL-EXPIRED"]


def test_time_to_live_in_the_future_is_fine() -> None:
    header, mime = _parsed(time_to_live=NOW + timedelta(hours=1))
    assert _ids(header, mime) == []


def test_manifest_reference_without_part() -> None:
    header, mime = _parsed()
    cid = mime.attachments[0].content_id
    header = replace(
        header,
        manifest=(ManifestReference(f"cid:{cid}", None), ManifestReference("cid:nope@x", None)),
    )
    assert _ids(header, mime) == ["EBMS-MANIFEST-CID-UNRESOLVED"]


def test_manifest_href_not_cid() -> None:
    header, mime = _parsed()
    header = replace(
        header,
        manifest=(*header.manifest, ManifestReference("http://example.org/x", None)),
    )
    assert _ids(header, mime) == ["EBMS-MANIFEST-HREF-UNSUPPORTED"]


def test_unreferenced_part() -> None:
    header, mime = _parsed()
    extra = replace(mime.attachments[0], content_id="extra@x")
    mime = replace(mime, attachments=(*mime.attachments, extra))
    assert _ids(header, mime) == ["EBMS-PART-UNREFERENCED"]


def test_business_message_without_payload() -> None:
    header, mime = _parsed()
    assert _ids(replace(header, manifest=()), replace(mime, attachments=())) == [
        "EBMS-PAYLOAD-MISSING"
    ]


def test_signal_without_payload_is_fine(reference_dir: Path) -> None:
    header = parse_envelope(sample(reference_dir, "acknowledgment.xml")).header
    assert header is not None
    mime = MimeMessage(b"", None, "text/xml", ())
    assert check_manifest(header, mime) == ()


def test_percent_encoded_cid_resolves_rfc2392() -> None:
    header, mime = _parsed(content_id="pay load%1@kommune.example")
    assert header.manifest[0].href == "cid:pay%20load%251@kommune.example"
    assert _ids(header, mime) == []
    assert resolve_cid("CID:a%40b") == "a@b"
    assert resolve_cid("http://x") is None


def test_findings_are_specific_and_norwegian() -> None:
    header, mime = _parsed(to_her="999999", time_to_live=datetime(2000, 1, 1, tzinfo=UTC))
    findings = check_header(header, mime, receivers=RECEIVERS, now=NOW).findings
    assert len(findings) == 2
    assert "999999" in findings[0].detail
    assert "TimeToLive" in findings[1].detail
    assert findings[1].location.endswith("eb:TimeToLive")
