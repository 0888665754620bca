"""The one table from findings to AppRec status and Error elements."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.apprec import AppRecStatus, error_code, receipt_outcome
from app.core.findings import Consequence, Finding, Layer, Rule, Subject
from app.identifiers import first_check_digits, second_check_digit
from app.msghead import rules as mh
from tests.budgets import examples

SLOW = pytest.mark.slow  # the second tier: `make test-all`

FID = "01018012345"  # made up (not a valid fødselsnummer)


def rule(rule_id: str, consequence: Consequence, code: str | None) -> Rule:
    return Rule(rule_id, Layer.CONTENT, consequence, "title", "tekst", code)


ROW = rule("IPL-TEST-ROW", Consequence.DROP_NOTIFICATION, "E31")
ROW2 = rule("IPL-TEST-ROW2", Consequence.DROP_NOTIFICATION, "E30")
WARN = rule("IPL-TEST-WARN", Consequence.WARN, "X99")
NO_CODE = rule("IPL-TEST-NOCODE", Consequence.REJECT_MESSAGE, None)


def row(r: Rule, guid: str, detail: str = "feil i raden", **subject: str) -> Finding:
    return Finding(
        r,
        f"/Melding/Notifikasjon[@guid='{guid}']",
        detail,
        Subject(
            notification_guid=guid,
            bruker_nr=subject.get("bruker_nr"),
            fid=subject.get("fid"),
            kommune_nr=subject.get("kommune_nr"),
        ),
    )


def test_no_findings_is_ok() -> None:
    outcome = receipt_outcome([])
    assert outcome.status is AppRecStatus.OK
    assert outcome.errors == ()


def test_warnings_only_is_ok_without_errors() -> None:
    outcome = receipt_outcome([row(WARN, "g1"), row(WARN, "g2")])
    assert outcome.status is AppRecStatus.OK
    assert outcome.errors == ()


def test_row_level_only_is_status_3_with_one_error_per_notification() -> None:
    findings = [
        row(ROW, "g1", bruker_nr="B1"),
        row(ROW2, "g1", "en annen feil", bruker_nr="B1"),
        row(ROW2, "g2"),
        row(WARN, "g3"),
    ]
    outcome = receipt_outcome(findings)
    assert outcome.status is AppRecStatus.OK_ERROR_IN_PART
    assert [e.code for e in outcome.errors] == ["E31", "E30"]
    first = outcome.errors[0].ot
    assert first is not None
    assert "g1" in first
    assert "B1" in first
    assert "IPL-TEST-ROW" in first
    assert "IPL-TEST-ROW2" in first
    assert outcome.errors[1].ot is not None
    assert "g2" in outcome.errors[1].ot


def test_any_message_level_finding_rejects_and_comes_first() -> None:
    findings = [row(ROW, "g1"), Finding(mh.MSGID_MISSING, "/MsgHead/MsgInfo/MsgId", "mangler")]
    outcome = receipt_outcome(findings)
    assert outcome.status is AppRecStatus.REJECTED
    assert [e.code for e in outcome.errors] == ["E10", "E31"]
    assert outcome.errors[0].ot == "MSGHEAD-MSGID-MISSING: mangler"
    assert outcome.errors[0].dn == "Ugyldig meldingsidentifikator"


def test_a_transport_error_that_reaches_the_receipt_rejects() -> None:
    transport = Rule("EBMS-X", Layer.TRANSPORT, Consequence.MESSAGE_ERROR, "t", "t")
    outcome = receipt_outcome([Finding(transport, "eb:MessageHeader", "feil")])
    assert outcome.status is AppRecStatus.REJECTED
    assert [e.code for e in outcome.errors] == ["X99"]


def test_identical_message_level_findings_are_deduplicated() -> None:
    f = Finding(mh.SCHEMA_INVALID, "/MsgHead/MsgInfo/Foo", "ugyldig")
    g = Finding(mh.SCHEMA_INVALID, "/MsgHead/MsgInfo/Bar", "ugyldig på en annen måte")
    outcome = receipt_outcome([f, f, g, f])
    assert len(outcome.errors) == 2


def test_rule_without_code_uses_x99() -> None:
    f = Finding(NO_CODE, "/x", "noe gikk galt")
    assert error_code(f) == "X99"
    assert [e.code for e in receipt_outcome([f]).errors] == ["X99"]


def test_unknown_code_uses_x99() -> None:
    odd = rule("IPL-ODD", Consequence.REJECT_MESSAGE, "Z42")
    assert error_code(Finding(odd, "/x", "d")) == "X99"


def test_a_fid_never_reaches_the_ot() -> None:
    leaky = [
        row(ROW, "g1", f"feil fid {FID} i raden", fid=FID),
        Finding(NO_CODE, "/x", f"uventet {FID}", Subject(fid=FID)),
        row(ROW, "g2", "orgnr 974760673 (9 sifre) er ikke en fid"),
    ]
    for outcome in (receipt_outcome(leaky), receipt_outcome(leaky[:1])):
        for e in outcome.errors:
            assert e.ot is not None
            assert FID not in e.ot
    kept = receipt_outcome(leaky).errors[2].ot
    assert kept is not None
    assert "974760673" in kept


@pytest.mark.parametrize(
    "leak",
    [
        "010180 12345",  # split after the birth date
        "010180.12345",
        "010180-12345",
        "0101801234",  # ten digits: one digit short of a fid is still a fid
        "1010180123456",  # a fid inside a longer run
        "x010180 12345 y",
    ],
)
def test_fid_like_numbers_are_masked_in_the_ot(leak: str) -> None:
    outcome = receipt_outcome([Finding(NO_CODE, "/x", f"verdien {leak} er feil")])
    ot = outcome.errors[0].ot
    assert ot is not None
    assert "010180" not in ot
    assert "***********" in ot


def test_guids_survive_the_masking() -> None:
    guid = "01234567-8901-2345-6789-012345678901"  # all digits: would look like a number
    outcome = receipt_outcome([row(ROW, guid, "feil i raden", bruker_nr="B1")])
    ot = outcome.errors[0].ot
    assert ot is not None
    assert guid in ot


def test_a_short_junk_fid_does_not_mask_the_text() -> None:
    outcome = receipt_outcome([row(ROW, "g1", "typeID 1 er feil", fid="1")])
    ot = outcome.errors[0].ot
    assert ot is not None
    assert "typeID 1 er feil" in ot


# 100 000 rows (a whole real file) in the second tier (`make test-all`); `make test` caps 2 000.
@pytest.mark.parametrize(
    "rows", [pytest.param(2_000, id="2000"), pytest.param(100_000, id="100000", marks=SLOW)]
)
def test_many_bad_rows_are_capped_with_one_summary_error_per_rule(rows: int) -> None:
    findings = [row(ROW if i % 3 else ROW2, f"g{i}", kommune_nr="0301") for i in range(rows)]
    outcome = receipt_outcome(findings, max_errors=50)
    assert outcome.status is AppRecStatus.OK_ERROR_IN_PART
    assert len(outcome.errors) == 50
    assert all("feil til" not in (e.ot or "") for e in outcome.errors[:48])
    first, second = outcome.errors[-2:]
    left_out = range(48, rows)
    e31 = sum(1 for i in left_out if i % 3)
    e30 = len(left_out) - e31
    assert (first.code, second.code) == ("E31", "E30")  # the more frequent rule first
    assert (first.ot or "").startswith(f"IPL-TEST-ROW: {e31} feil til er ikke listet")
    assert (second.ot or "").startswith(f"IPL-TEST-ROW2: {e30} feil til er ikke listet")
    for summary in (first, second):
        ot = summary.ot or ""
        assert "notifikasjoner, blant dem: Notifikasjon (notifikasjonGUID g" in ot
        assert "/api/v1/kommuner/0301/feilliste" in ot
        assert len(ot) <= 1000
    assert f"de gjelder {e31} notifikasjoner" in (first.ot or "")
    if rows == 100_000:  # the numbers as written down for the whole file
        assert "IPL-TEST-ROW: 66634 feil til" in (first.ot or "")
        assert "IPL-TEST-ROW2: 33318 feil til" in (second.ot or "")
    assert outcome.errors[0].ot is not None
    assert "g0" in outcome.errors[0].ot


def test_past_the_cap_more_rules_than_room_share_the_last_error() -> None:
    rules = [rule(f"IPL-R{i}", Consequence.DROP_NOTIFICATION, "E31") for i in range(6)]
    findings = [row(rules[i % 6], f"g{i}") for i in range(30)]
    outcome = receipt_outcome(findings, max_errors=3)
    assert len(outcome.errors) == 3
    shared = outcome.errors[-1].ot or ""
    assert "feil til etter andre regler (" in shared
    assert "Hele listen står i kommunens feilliste hos KPR." in shared
    counted = [e.ot or "" for e in outcome.errors]
    total = sum(int(t.split(": ", 1)[1].split(" ")[0]) for t in counted[:2])
    total += int(shared.split(" feil til")[0])
    assert total == 30


def test_exactly_max_errors_needs_no_summary() -> None:
    outcome = receipt_outcome([row(ROW, f"g{i}") for i in range(5)], max_errors=5)
    assert len(outcome.errors) == 5
    assert all(e.ot is not None and "feil til" not in e.ot for e in outcome.errors)


def test_max_errors_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_errors"):
        receipt_outcome([], max_errors=0)


def test_long_details_are_cut() -> None:
    outcome = receipt_outcome([Finding(NO_CODE, "/x", "x" * 5000)])
    assert outcome.errors[0].ot is not None
    assert len(outcome.errors[0].ot) == 1000


_CONSEQUENCE = st.sampled_from(list(Consequence))


@given(
    st.lists(
        st.tuples(_CONSEQUENCE, st.sampled_from(["g1", "g2", "g3"]), st.text(max_size=30)),
        max_size=30,
    ),
    st.integers(min_value=1, max_value=5),
)
@settings(max_examples=examples(100))
def test_status_follows_the_worst_consequence(
    items: list[tuple[Consequence, str, str]], cap: int
) -> None:
    findings = [row(rule(f"R-{c.value}", c, "E31"), g, d) for c, g, d in items]
    outcome = receipt_outcome(findings, max_errors=cap)
    present = {c for c, _, _ in items}
    if present & {Consequence.MESSAGE_ERROR, Consequence.REJECT_MESSAGE}:
        assert outcome.status is AppRecStatus.REJECTED
    elif present & {Consequence.DROP_NOTIFICATION, Consequence.KEEP_WITH_ERROR}:
        assert outcome.status is AppRecStatus.OK_ERROR_IN_PART
    else:
        assert outcome.status is AppRecStatus.OK
    assert len(outcome.errors) <= cap
    assert (outcome.errors == ()) is (outcome.status is AppRecStatus.OK)


def test_a_brukernr_of_many_digits_is_shown_whole() -> None:
    outcome = receipt_outcome([row(ROW, "g1", bruker_nr="100000007001", fid=FID)])
    ot = outcome.errors[0].ot or ""
    assert "brukerNr 100000007001" in ot
    assert "***" not in ot


def test_a_brukernr_that_is_the_fid_or_a_person_number_stays_masked() -> None:
    valid = "01018000123"  # made up; any valid-looking 11-digit number is treated as a person's
    ten = valid[:9] + str(first_check_digits(valid, rule_2032=False)[0])
    person = ten + str(second_check_digit(ten))
    for bruker_nr, fid in ((FID, FID), (person, "010180")):
        ot = receipt_outcome([row(ROW, "g1", bruker_nr=bruker_nr, fid=fid)]).errors[0].ot or ""
        assert bruker_nr not in ot
        assert "brukerNr ***********" in ot


def test_a_brukernr_with_a_long_digit_run_after_a_letter_is_shown_whole() -> None:
    ot = receipt_outcome([row(ROW, "g1", "annen 123456789012", bruker_nr="B000700000003")])
    text = ot.errors[0].ot or ""
    assert "brukerNr B000700000003) er ikke tatt imot" in text
    assert "123456789012" not in text  # other digit runs are still masked


def test_a_row_kept_with_its_error_asks_for_a_correction() -> None:
    kept = rule("IPL-TEST-KEPT", Consequence.KEEP_WITH_ERROR, "T99")
    outcome = receipt_outcome([row(kept, "g1")])
    assert outcome.status is AppRecStatus.OK_ERROR_IN_PART
    ot = outcome.errors[0].ot or ""
    assert "er lagret, men har feil" in ot
    assert "korreksjon (status M)" in ot
    # a row with a dropping finding as well is not taken in: that is what it is told
    dropped = receipt_outcome([row(kept, "g1"), row(ROW, "g1")]).errors[0].ot or ""
    assert "er ikke tatt imot" in dropped
