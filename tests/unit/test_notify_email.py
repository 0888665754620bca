"""The email's text (issue 21 item 10): warnings counted per rule, the important ones first,
no personal data, and never "ingen feil" of a message with warnings."""

from __future__ import annotations

from datetime import UTC, datetime

from app.content.iplos import rules as R
from app.content.iplos.validate import salvaged
from app.core.findings import Finding, Subject
from app.core.xmlparse import parse_xml
from app.notify.email import RuleCount, compose_notification, warning_counts

FID = "01018012345"  # made up


def _compose(**overrides: object) -> tuple[str, str]:
    args: dict[str, object] = {
        "party_name": "Demo kommune",
        "her_id": 8000001,
        "message_ref": 4711,
        "received_at": datetime(2024, 1, 15, 23, 30, tzinfo=UTC),
        "status_text": "OK",
        "error_counts": {},
        "link": "https://kpr.example/api/v1/kommuner/0301/feilliste",
    }
    args.update(overrides)
    return compose_notification(**args)  # type: ignore[arg-type]


def _row(rule: object, guid: str, detail: str = "detalj") -> Finding:
    subject = Subject(notification_guid=guid, bruker_nr="B1", fid=FID, kommune_nr="0301")
    return Finding(rule, "/Melding/Notifikasjon[1]", detail, subject)  # type: ignore[arg-type]


def test_warnings_are_counted_per_rule_important_first() -> None:
    findings = [
        _row(R.TEXT_LENGTH, "g1"),
        _row(R.ORGNR_INVALID, "g1"),
        _row(R.ORGNR_INVALID, "g2"),
        Finding(R.LOPENR_GAP, "/Melding", "KPR mangler 2 løpenummer fra kommunen: 5-6."),
        Finding(R.CALENDAR_AFTER_CORRECTION, "/Melding", "Meldingen rapporterer for 2018."),
        _row(R.FID_INVALID, "g3"),  # an error: not a warning
    ]
    counted = warning_counts(findings)
    assert [(w.rule_id, w.count) for w in counted] == [
        ("IPL-CALENDAR-AFTER-CORRECTION", 1),
        ("IPL-LOPENR-GAP", 1),
        (R.ORGNR_INVALID.id, 2),
        ("IPL-TEXT-LENGTH", 1),
    ]
    assert counted[1].details == ("KPR mangler 2 løpenummer fra kommunen: 5-6.",)
    assert counted[2].details == ()  # only important rules show what they say
    assert counted[2].text == R.ORGNR_INVALID.text_no


def test_an_important_warning_about_a_row_shows_no_detail() -> None:
    (late,) = warning_counts([_row(R.CALENDAR_LATE, "g1", f"brukerNr B1 fid {FID}")])
    assert (late.rule_id, late.count, late.details) == ("IPL-CALENDAR-LATE", 1, ())


def test_a_message_with_warnings_never_has_no_errors() -> None:
    warnings = warning_counts(
        [Finding(R.CALENDAR_AFTER_CORRECTION, "/Melding", "Meldingen rapporterer for 2018.")]
    )
    subject, body = _compose(warnings=warnings, findings_link="https://kpr.example/m/4711")
    assert "(OK, med merknader)" in subject
    assert "ingen feil" not in body
    assert "Status: OK, med merknader" in body
    assert "kommer ikke med i årets tall. (IPL-CALENDAR-AFTER-CORRECTION)\n" in body
    assert "\n    Meldingen rapporterer for 2018.\n" in body
    assert "  IPL-CALENDAR-AFTER-CORRECTION: 1 (Meldingen for rapporteringsåret" in body
    assert "Meldingen har 1 merknad (advarsel), fordelt på regel:" in body
    assert "(krever tilgang):\nhttps://kpr.example/m/4711" in body


def test_errors_and_warnings_are_both_counted() -> None:
    warnings = [RuleCount("IPL-TEXT-LENGTH", "Teksten er lengre enn 100 tegn.", 2)]
    subject, body = _compose(status_text="Avvist", error_counts={"T02": 1}, warnings=warnings)
    assert "(Avvist)" in subject
    assert "Meldingen har 1 feil" in body
    assert "Meldingen har 2 merknader (advarsler), fordelt på regel:" in body
    assert "Viktig" not in body


def test_a_rejected_message_puts_no_warning_first() -> None:
    warnings = warning_counts([Finding(R.CALENDAR_LATE, "/Melding", "for sent")])
    _, body = _compose(
        status_text="Avvist", error_counts={"T02": 1}, warnings=warnings, rejected=True
    )
    assert "Viktig" not in body  # "Notifikasjonene er lagret" would not be true
    assert "  IPL-CALENDAR-LATE: 1 (" in body


def test_no_findings_at_all() -> None:
    subject, body = _compose()
    assert "(OK)" in subject
    assert "Meldingen har ingen feil og ingen merknader." in body
    assert "(advarsel" not in body


def test_a_refused_document_still_names_its_municipality_and_contacts() -> None:
    root = parse_xml(
        b'<Melding xmlns="http://www.npr.no/xmlstds/56_0_0_ipl" ukjent="x">'
        b'<Kommune kommuneNr="0301"/><Kommune kommuneNr="abc"/>'
        b'<Kontaktperson typeKontaktperson="17" meldEpost1="a@kommune.example" '
        b'meldEpost2="ikke en adresse"/>'
        b'<Kontaktperson typeKontaktperson="01" meldEpost1="b@kommune.example"/>'
        b"</Melding>"
    )
    kommuner, contacts = salvaged(root)
    assert kommuner == ("0301", "abc")
    assert [(c.type, c.email1, c.email2) for c in contacts] == [
        ("17", "a@kommune.example", None),
        ("1", "b@kommune.example", None),
    ]
    other = parse_xml(b'<Melding xmlns="urn:other"><Kommune kommuneNr="0301"/></Melding>')
    assert salvaged(other) == ((), ())
