"""Retention's masking of stored AppRec text (app/apprec/redact.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.apprec.build import build_receipt
from app.apprec.model import OriginalMsgRef, Party
from app.apprec.parse import parse_apprec
from app.apprec.redact import MASK, redact_apprec, redact_text
from app.catalogue import rules_by_id
from app.core.findings import Finding, Subject

FID = "01010112345"  # shape only


def _receipt(bruker_nr: str, detail: str) -> bytes:
    rule = rules_by_id()["IPL-FID-INVALID"]
    finding = Finding(
        rule=rule,
        location="/Melding/Notifikasjon[1]",
        detail=detail,
        subject=Subject(
            notification_guid="bdd640fb-0667-4ad1-9c80-317fa3b1799d", bruker_nr=bruker_nr, fid=FID
        ),
    )
    return build_receipt(
        [finding],
        sender=Party(name="KPR", her_id="131725"),
        receiver=Party(name="Oslo", her_id="8000001"),
        original=OriginalMsgRef(
            msg_type="KPR_IPL", msg_type_dn="IPLOS", issue_date="2018-11-20T11:00:00", id="m1"
        ),
        now=datetime(2018, 11, 20, 11, tzinfo=UTC),
    )


def test_the_label_and_every_known_bruker_nr_are_masked() -> None:
    xml = _receipt("EPJ-4711", "brukerNr EPJ-4711 har to aktive tjenester")
    assert b"EPJ-4711" in xml
    redacted = redact_apprec(xml, ["EPJ-4711"])
    assert b"EPJ-4711" not in redacted
    parsed = parse_apprec(redacted)  # still a valid AppRec, the same status and codes
    assert parsed.status == parse_apprec(xml).status
    [error] = parsed.errors
    assert f"brukerNr {MASK}" in (error.ot or "")
    assert "bdd640fb-0667-4ad1-9c80-317fa3b1799d" in (error.ot or "")  # the GUID stays


def test_a_bruker_nr_of_digits_and_anything_like_a_fid_are_masked() -> None:
    xml = _receipt("1234567890", f"fid {FID[:6]} {FID[6:]} er feil")
    assert b"1234567890" in xml  # shown whole in the receipt: the EPJ's number
    redacted = redact_apprec(xml)  # even with no finding left to name it
    assert b"1234567890" not in redacted
    assert FID[6:].encode() not in redacted


def test_every_label_form_is_masked() -> None:
    for label in (
        "Notifikasjon nr. 3 (notifikasjonGUID g, brukerNr Q 1, løpenummer 7) er ikke tatt imot:",
        "Notifikasjon nr. 2 (notifikasjonGUID g, brukerNr Q 1) er lagret, men har feil:",
        "Gjelder 2 notifikasjoner: Notifikasjon nr. 2 (brukerNr Q 1, løpenummer 2); "
        "Notifikasjon nr. 3 (brukerNr Q 2).",
    ):
        redacted = redact_text(label)
        assert "Q 1" not in redacted, redacted
        assert "Q 2" not in redacted, redacted
        assert f"brukerNr {MASK}" in redacted


def test_short_known_values_mask_only_the_label_and_whole_words() -> None:
    text = "Notifikasjon brukerNr B1 er ikke tatt imot: IPL-B12: B1 mangler"
    assert redact_text(text, ["B1"]) == (
        f"Notifikasjon brukerNr {MASK} er ikke tatt imot: IPL-B12: B1 mangler"
    )
    assert redact_text("IPL-X: ABC mangler, ABCD ok", ["ABC"]) == f"IPL-X: {MASK} mangler, ABCD ok"


def test_redaction_is_idempotent_and_survives_text_that_is_not_xml() -> None:
    xml = _receipt("EPJ-4711", "x")
    once = redact_apprec(xml, ["EPJ-4711"])
    assert redact_apprec(once, ["EPJ-4711"]) == once
    assert redact_apprec(b"not xml 12345678901 brukerNr Q er ikke tatt imot:") == (
        f"not xml *********** brukerNr {MASK} er ikke tatt imot:".encode()
    )
