"""The transport rule catalogue."""

from __future__ import annotations

from app.core.findings import Consequence, Layer
from app.ebxml.rules import RULES

EBMS_CODES = {
    "ValueNotRecognized",
    "NotSupported",
    "Inconsistent",
    "OtherXml",
    "DeliveryFailure",
    "TimeToLiveExpired",
    "SecurityFailure",
    "MimeProblem",
    "Unknown",
}


def test_rule_ids_are_unique_and_prefixed() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("EBMS-") for i in ids)


def test_every_rule_is_a_transport_message_error_with_an_ebms_code() -> None:
    for r in RULES:
        assert r.layer is Layer.TRANSPORT
        assert r.consequence is Consequence.MESSAGE_ERROR
        assert r.ebms_error_code in EBMS_CODES
        assert r.text_no.strip()
        assert r.apprec_code is None


def test_registry_rules_are_in_the_catalogue() -> None:
    by_id = {r.id: r for r in RULES}
    for rule_id in (
        "EBMS-FROM-UNKNOWN",
        "EBMS-CPA-UNKNOWN",
        "EBMS-SERVICE-NOT-ALLOWED",
        "EBMS-REFTO-UNKNOWN",
    ):
        assert rule_id in by_id
    assert by_id["EBMS-DUPLICATE-INCONSISTENT"].ebms_error_code == "Inconsistent"
