"""MsgHead context checks: clock skew, supported types, HER-id consistency (spoofing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.core.findings import Consequence, Finding
from app.msghead import MsgHead, check_msghead, msgid_duplicate, read_msghead
from app.msghead import rules as r
from tests.unit.test_msghead import msghead_xml

NOW = datetime(2018, 11, 20, 11, 5, tzinfo=UTC)  # 12:05 in Oslo; the message says 12:00
OURS = frozenset({"131725", "8133973"})


def head(**kwargs: str | None) -> MsgHead:
    h = read_msghead(msghead_xml(**kwargs)).msghead  # type: ignore[arg-type]
    assert h is not None
    return h


def check(h: MsgHead, **overrides: object) -> tuple[Finding, ...]:
    args: dict[str, object] = {
        "now": NOW,
        "supported_types": {"KPR_IPL"},
        "ebxml_from_her_id": "8000001",
        "ebxml_to_her_id": "131725",
        "party_her_id": "8000001",
        "our_her_ids": OURS,
    }
    args.update(overrides)
    return check_msghead(h, **args)  # type: ignore[arg-type]


def test_a_consistent_message_passes() -> None:
    assert check(head()) == ()


def test_gendate_slightly_ahead_is_within_the_skew() -> None:
    assert check(head(gen_date="2018-11-20T12:14:00"), max_clock_skew=timedelta(minutes=10)) == ()


def test_gendate_in_the_future_beyond_the_skew_is_a_warning() -> None:
    findings = check(head(gen_date="2018-11-20T12:16:00"), max_clock_skew=timedelta(minutes=10))
    assert [f.rule for f in findings] == [r.GENDATE_FUTURE]
    assert findings[0].rule.consequence is Consequence.WARN
    assert "tatt imot" in findings[0].detail
    assert "2018-11-20T12:16:00" in findings[0].detail


def test_gendate_with_an_explicit_zone_is_compared_in_that_zone() -> None:
    # 11:14Z is 12:14 Oslo: within a 10-minute skew of 12:05.
    assert check(head(gen_date="2018-11-20T11:14:00Z")) == ()


def test_unsupported_type_is_t10_and_lists_what_is_supported() -> None:
    findings = check(head(msg_type="KPR_IDE"), supported_types={"KPR_IPL"})
    assert [f.rule for f in findings] == [r.TYPE_UNSUPPORTED]
    assert findings[0].rule.apprec_code == "T10"
    assert "KPR_IDE" in findings[0].detail
    assert "KPR_IPL" in findings[0].detail


def test_sender_other_than_ebxml_from_is_spoofing() -> None:
    findings = check(head(sender_her="8000002"), party_her_id=None)
    assert [f.rule for f in findings] == [r.SENDER_NOT_EBXML_FROM]
    assert "8000002" in findings[0].detail
    assert "8000001" in findings[0].detail
    assert findings[0].rule.consequence is Consequence.REJECT_MESSAGE


def test_sender_other_than_the_registered_party_is_spoofing() -> None:
    findings = check(head(sender_her="8000002"), ebxml_from_her_id="8000002")
    assert [f.rule for f in findings] == [r.SENDER_NOT_PARTY]


def test_receiver_other_than_ebxml_to_is_rejected() -> None:
    findings = check(head(receiver_her="8133973"))
    assert [f.rule for f in findings] == [r.RECEIVER_NOT_EBXML_TO]
    assert findings[0].rule.apprec_code == "E21"


def test_receiver_not_ours_is_e21() -> None:
    findings = check(head(receiver_her="999"), ebxml_to_her_id=None)
    assert [f.rule for f in findings] == [r.RECEIVER_UNKNOWN]
    assert findings[0].rule.apprec_code == "E21"


def test_none_expectations_skip_the_envelope_checks() -> None:
    findings = check(
        head(sender_her="1", receiver_her="131725"),
        ebxml_from_her_id=None,
        ebxml_to_her_id=None,
        party_her_id=None,
    )
    assert findings == ()


def test_missing_sender_her_id_is_a_mismatch() -> None:
    # The first HER ident is the sender's: make it a LIN ident instead.
    h = read_msghead(msghead_xml().replace(b'V="HER"', b'V="LIN"', 1)).msghead
    assert h is not None
    assert h.sender_her_id is None
    ids = {f.rule.id for f in check(h)}
    assert {"MSGHEAD-SENDER-NOT-EBXML-FROM", "MSGHEAD-SENDER-NOT-PARTY"} <= ids


def test_naive_now_is_a_bug() -> None:
    with pytest.raises(ValueError, match="aware"):
        check(head(), now=datetime(2018, 11, 20, 12))


def test_msgid_duplicate_finding_names_the_msgid_and_sender() -> None:
    f = msgid_duplicate(head(), first_received_at=NOW)
    assert f.rule is r.MSGID_DUPLICATE
    assert f.rule.apprec_code == "E10"
    assert "8b8148f6-b38a-488c-a65e-d389b74d0fb1" in f.detail
    assert "8000001" in f.detail
