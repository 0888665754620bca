"""XPR(ipl) 56.0.0 content rules: every rule fires on exactly its own fault."""

from __future__ import annotations

import dataclasses
import datetime
import random
import re
from pathlib import Path

import pytest
from lxml import etree

from app.content import lookup, lookup_namespace
from app.content.iplos import FORMAT, NS, RULES, validate_melding
from app.content.model import (
    EMPTY_GUID,
    ContentContext,
    FidChange,
    IplosHistory,
    StoredNotification,
    fid_change,
    pair_moves,
)
from app.core.findings import Consequence, Rule, Severity
from app.dev.sample import COMPANIONS, SCENARIOS, build_sample, fault_context
from app.identifiers import (
    IdKind,
    PersonId,
    check_person_id,
    first_check_digits,
    second_check_digit,
    synthetic_person_id,
)

KOMMUNE = "0301"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_each_fault_yields_exactly_its_rule(rule: Rule) -> None:
    rule_id = rule.id
    data = build_sample(3, KOMMUNE, [rule_id], seed=7)
    result = validate_melding(data, fault_context(KOMMUNE, [rule_id]))
    ids = [f.rule.id for f in result.findings]
    companions = COMPANIONS.get(rule_id, ())
    assert [i for i in ids if i not in companions] == [rule_id]
    assert set(ids) == {rule_id, *companions}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_finding_details_never_contain_a_fid(rule: Rule) -> None:
    rule_id = rule.id
    data = build_sample(3, KOMMUNE, [rule_id], seed=7)
    clean = validate_melding(build_sample(3, KOMMUNE, seed=7), fault_context(KOMMUNE))
    result = validate_melding(data, fault_context(KOMMUNE, [rule_id]))
    fids = {n.fid for n in clean.notifications} | {n.fid for n in result.notifications}
    for finding in result.findings:
        assert not any(fid and fid in finding.detail for fid in fids)
        assert finding.detail.strip()


def test_rules_have_stable_unique_ids_and_codes() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for r in RULES:
        assert r.id.startswith("IPL-")
        assert r.text_no
        if r.consequence is not Consequence.WARN:
            assert r.apprec_code in {"T01", "T02", "T99", "E30", "E31", "E36", "X99"}


# 10 000 notifications in the second tier (`make test-all`), 1 000 in `make test`.
SIZES = [pytest.param(1_000, id="1000"), pytest.param(10_000, id="10000", marks=pytest.mark.slow)]


@pytest.mark.parametrize("size", SIZES)
def test_a_valid_sample_has_no_errors(size: int) -> None:
    data = build_sample(size, KOMMUNE, seed=11)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert [f for f in result.findings if f.severity is Severity.ERROR] == []
    assert len(result.notifications) == size
    assert not any(n.dropped for n in result.notifications)
    assert [n.lopenr for n in result.notifications] == list(range(1, size + 1))


@pytest.mark.parametrize("size", SIZES)
def test_valid_sample_validates_against_the_official_schema(reference_dir: Path, size: int) -> None:
    schema = etree.XMLSchema(etree.parse(str(reference_dir / "xsd/iplos-56.0.0/XPR(ipl).xsd")))
    data = build_sample(size, KOMMUNE, seed=11)
    doc = etree.fromstring(data, parser=etree.XMLParser(huge_tree=True))
    assert schema.validate(doc), schema.error_log


XSD_MUTATIONS = {
    "valid": lambda d: d,
    "prohibited-attribute": lambda d: d.replace(
        b'meldingstype="K"', b'meldingstype="K" lopenr="1"'
    ),
    "wrong-meldingstype": lambda d: d.replace(b'meldingstype="K"', b'meldingstype="B"'),
    "bad-guid": lambda d: d.replace(b'notifikasjonGUID="', b'notifikasjonGUID="x', 1),
    "braced-guid": lambda d: d.replace(
        b'notifikasjonForrigeGUID="00000000-0000-0000-0000-000000000000"',
        b'notifikasjonForrigeGUID="{00000000-0000-0000-0000-000000000000}"',
    ),
    "bad-date": lambda d: d.replace(b'hendelseDato="2018-01-0', b'hendelseDato="2018-13-0', 1),
    "no-kommune": lambda d: d.replace(b'<Kommune kommuneNr="0301"/>', b""),
    "long-bydel": lambda d: d.replace(b'bydel="030101"', b'bydel="0301011"', 1),
    "unknown-element": lambda d: d.replace(b"</Melding>", b"<Annet/></Melding>"),
    "wrong-namespace": lambda d: d.replace(NS.encode(), b"urn:other"),
    "missing-tjenesteOrgNr": lambda d: d.replace(b"TjenesteStart", b"TjenesteutforerEndret", 4),
}


@pytest.mark.parametrize("mutate", list(XSD_MUTATIONS.values()), ids=list(XSD_MUTATIONS))
def test_own_schema_agrees_with_official(reference_dir: Path, mutate: object) -> None:
    official = etree.XMLSchema(etree.parse(str(reference_dir / "xsd/iplos-56.0.0/XPR(ipl).xsd")))
    own = etree.XMLSchema(etree.parse(str(FORMAT.schema_path)))
    data = mutate(build_sample(5, KOMMUNE, seed=3))  # type: ignore[operator]
    for fault in ("IPL-XSD", "IPL-KOMMUNE-UNIQUE", "IPL-FID-MISSING"):
        doc = etree.fromstring(build_sample(5, KOMMUNE, [fault], seed=3))
        assert official.validate(doc) is own.validate(doc) is False
    doc = etree.fromstring(data)
    assert official.validate(doc) == own.validate(doc)


def test_xsd_finding_names_the_element_path_and_drops_only_its_row() -> None:
    data = build_sample(4, KOMMUNE, seed=1).replace(b" brukerNr=", b" xbrukerNr=", 1)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert not result.rejected
    assert [(f.rule.id, f.location) for f in result.findings] == [
        ("IPL-XSD-IGNORED", "/Melding/Notifikasjon[1]/TjenesteStart/Bruker/@xbrukerNr"),
        ("IPL-XSD-ROW", "/Melding/Notifikasjon[1]/TjenesteStart/Bruker/@brukerNr"),
    ]
    row = result.findings[1]
    assert row.rule.apprec_code == "T02"
    assert "Skjemafeil i /Melding/Notifikasjon[1]/TjenesteStart/Bruker/@brukerNr" in row.detail
    assert "linje" not in row.detail
    assert [n.dropped for n in result.notifications] == [True, False, False, False]


def test_prohibited_bruker_attribute_is_ignored_with_a_warning() -> None:
    data = build_sample(4, KOMMUNE, seed=1).replace(b'typeID="1"', b'typeID="1" kjonn="1"', 1)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert [(f.rule.id, f.location) for f in result.findings] == [
        ("IPL-XSD-IGNORED", "/Melding/Notifikasjon[1]/TjenesteStart/Bruker/@kjonn")
    ]
    assert not any(n.dropped for n in result.notifications)


@pytest.mark.parametrize(
    ("before", "after", "location"),
    [
        (b' fid="', b' xfid="', "/Melding/Notifikasjon[2]/TjenesteStart/Bruker/@fid"),
        (b' typeID="1"', b"", "/Melding/Notifikasjon[2]/TjenesteStart/Bruker/@typeID"),
        (
            # missing (handling 1); a malformed one keeps the row (IPL-XSD-VALUE, issue 21)
            b' notifikasjonGUID="',
            b' xnotifikasjonGUID="',
            "/Melding/Notifikasjon[2]/@notifikasjonGUID",
        ),
    ],
)
def test_xsd_errors_with_handling_1_reject_the_message(
    before: bytes, after: bytes, location: str
) -> None:
    data = build_sample(3, KOMMUNE, seed=1)
    at = data.index(b"<Notifikasjon ", data.index(b"<Notifikasjon ") + 1)  # the second one
    data = data[:at] + data[at:].replace(before, after, 1)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert result.rejected
    assert location in [f.location for f in result.findings]


def test_many_rows_with_schema_errors_each_concern_only_themselves() -> None:
    # hendelseDato has handling 9: each row is kept with its error (issue 21)
    data = build_sample(300, KOMMUNE, seed=5).replace(
        b'hendelseDato="2018-01-0', b'hendelseDato="2018-13-0'
    )
    result = validate_melding(data, fault_context(KOMMUNE))
    bad = [n.index for n in result.notifications if "IPL-XSD-VALUE" in n.errors]
    assert len(bad) > 50  # more than the cap on message-level schema findings
    assert not any(n.dropped for n in result.notifications)
    assert not result.rejected
    assert {f.rule.id for f in result.findings} == {"IPL-XSD-VALUE"}
    assert all(f.location.endswith("/TjenesteStart/@hendelseDato") for f in result.findings)


def test_melding_inside_msghead_is_checked_as_element() -> None:
    data = build_sample(2, KOMMUNE, ["IPL-FID-INVALID"], seed=1)
    wrapper = etree.fromstring(b"<Content>" + data.split(b"?>", 1)[1] + b"</Content>")
    result = validate_melding(wrapper[0], fault_context(KOMMUNE, ["IPL-FID-INVALID"]))
    assert [f.rule.id for f in result.findings] == ["IPL-FID-INVALID"]


def test_empty_fid_fails_the_whole_message() -> None:
    data = build_sample(2, KOMMUNE, seed=1)
    fid = validate_melding(data, fault_context(KOMMUNE)).notifications[0].fid
    result = validate_melding(data.replace(fid.encode(), b""), fault_context(KOMMUNE))
    assert [f.rule.id for f in result.findings] == ["IPL-FID-MISSING"]
    assert result.rejected
    assert result.findings[0].rule.apprec_code == "E30"


def test_findings_carry_the_subject_of_the_notification() -> None:
    data = build_sample(3, KOMMUNE, ["IPL-FID-INVALID"], seed=5)
    result = validate_melding(data, fault_context(KOMMUNE, ["IPL-FID-INVALID"]))
    (finding,) = result.findings
    last = result.notifications[-1]
    assert not last.dropped  # kept with its error (issue 21)
    assert finding.subject is not None
    assert finding.subject.notification_guid == last.guid
    assert finding.subject.bruker_nr == last.bruker_nr
    assert finding.subject.fid == last.fid
    assert finding.subject.kommune_nr == KOMMUNE
    assert finding.location == "/Melding/Notifikasjon[3]/TjenesteStart/Bruker/@fid"


def test_synthetic_identity_accepted_on_pilot_but_not_on_production() -> None:
    data = build_sample(3, KOMMUNE, seed=2)
    pilot = fault_context(KOMMUNE)
    production = dataclasses.replace(pilot, allow_synthetic=False)
    assert validate_melding(data, pilot).findings == ()
    findings = validate_melding(data, production).findings
    # every notification is dropped, so the message is rejected as a whole
    assert {f.rule.id for f in findings} == {"IPL-FID-SYNTHETIC", "IPL-ALL-DROPPED"}
    assert len(findings) == 4


def test_lopenr_and_chain_continue_across_messages() -> None:
    ctx = fault_context(KOMMUNE)
    first = validate_melding(build_sample(5, KOMMUNE, seed=1), ctx)
    history = ctx.history.updated_with(first.notifications)
    assert history.received[KOMMUNE] == ((1, 5),)
    ctx2 = dataclasses.replace(ctx, history=history)
    good = build_sample(
        3, KOMMUNE, seed=2, start_lopenr=6, previous_guid=first.notifications[-1].guid
    )
    assert validate_melding(good, ctx2).findings == ()
    # a number used before by another notification: a warning, the row is kept
    stale = build_sample(
        3, KOMMUNE, seed=3, start_lopenr=5, previous_guid=first.notifications[3].guid
    )
    result = validate_melding(stale, ctx2)
    assert [f.rule.id for f in result.findings] == ["IPL-LOPENR-ORDER"]
    assert not any(n.dropped for n in result.notifications)
    # 9 chains to nothing KPR has (8 is missing): a gap, not a chain fault
    later = build_sample(1, KOMMUNE, seed=4, start_lopenr=9, previous_guid=EMPTY_GUID)
    ids = [f.rule.id for f in validate_melding(later, ctx2).findings]
    assert ids == ["IPL-LOPENR-GAP"]
    # 6 with an empty forrige GUID while 5 is known: the chain is broken
    restart = build_sample(1, KOMMUNE, seed=5, start_lopenr=6, previous_guid=EMPTY_GUID)
    assert [f.rule.id for f in validate_melding(restart, ctx2).findings] == ["IPL-FORRIGE-CHAIN"]


def test_messages_in_reverse_order_are_all_accepted_and_the_gap_closes() -> None:
    ctx = fault_context(KOMMUNE)
    first = validate_melding(build_sample(2, KOMMUNE, seed=1), ctx)
    second_data = build_sample(
        2, KOMMUNE, seed=2, start_lopenr=3, previous_guid=first.notifications[-1].guid
    )
    second = validate_melding(second_data, ctx)  # 3-4 arrive first
    assert [f.rule.id for f in second.findings] == []  # nothing below 3 known yet: no gap
    history = ctx.history.updated_with(second.notifications)
    retry = validate_melding(
        build_sample(2, KOMMUNE, seed=1), dataclasses.replace(ctx, history=history)
    )
    assert retry.findings == ()
    assert not any(n.dropped for n in retry.notifications)
    assert history.updated_with(retry.notifications).received[KOMMUNE] == ((1, 4),)


def test_a_gap_is_reported_until_it_is_filled() -> None:
    ctx = fault_context(KOMMUNE)
    data = build_sample(3, KOMMUNE, ["IPL-LOPENR-GAP"], seed=1)
    (gap,) = validate_melding(data, ctx).findings
    assert gap.rule.id == "IPL-LOPENR-GAP"
    assert "1 løpenummer" in gap.detail
    assert ": 3." in gap.detail


def test_identical_resend_of_a_stored_notification_is_no_error() -> None:
    ctx = fault_context(KOMMUNE)
    data = build_sample(3, KOMMUNE, seed=7)
    first = validate_melding(data, ctx)
    ctx2 = dataclasses.replace(ctx, history=ctx.history.updated_with(first.notifications))
    again = validate_melding(data, ctx2)
    assert again.findings == ()
    assert all(n.already_stored and not n.dropped for n in again.notifications)
    changed = validate_melding(data.replace(b'tjenesteType="18"', b'tjenesteType="19"'), ctx2)
    assert [f.rule.id for f in changed.findings] == ["IPL-GUID-KNOWN"]


def test_one_guid_written_two_ways_drops_the_second_row() -> None:
    data = build_sample(3, KOMMUNE, ["IPL-GUID-UNIQUE"], seed=7)
    assert b'notifikasjonGUID="{' in data
    result = validate_melding(data, fault_context(KOMMUNE))
    assert [f.rule.id for f in result.findings] == ["IPL-GUID-UNIQUE"]
    assert [n.dropped for n in result.notifications] == [False, False, True]


def test_one_guid_written_the_same_way_twice_drops_the_second_row_once() -> None:
    data = build_sample(3, KOMMUNE, seed=3)
    guids = [n.guid for n in validate_melding(data, fault_context(KOMMUNE)).notifications]
    data = data.replace(guids[2].encode(), guids[0].encode())  # the schema's unique key breaks
    result = validate_melding(data, fault_context(KOMMUNE))
    assert [(f.rule.id, f.location) for f in result.findings] == [
        ("IPL-GUID-UNIQUE", "/Melding/Notifikasjon[3]/@notifikasjonGUID")
    ]
    assert [n.dropped for n in result.notifications] == [False, False, True]


def test_correction_refers_to_original_from_history() -> None:
    ctx = fault_context(KOMMUNE)
    data = build_sample(2, KOMMUNE, ["IPL-REF-UNKNOWN"], seed=9)
    result = validate_melding(data, ctx)
    assert not result.notifications[-1].dropped  # kept: the original may come later
    ref = result.notifications[-1].ref
    assert ref is not None
    known = dataclasses.replace(
        ctx, history=IplosHistory(notifications={ref: StoredNotification("N", 1, "x")})
    )
    assert validate_melding(data, known).findings == ()
    annulled_original = dataclasses.replace(
        ctx, history=IplosHistory(notifications={ref: StoredNotification("C", 1, "x")})
    )
    assert [f.rule.id for f in validate_melding(data, annulled_original).findings] == [
        "IPL-REF-UNKNOWN"
    ]


def test_brukernr_must_keep_its_person_across_messages() -> None:
    ctx = fault_context(KOMMUNE)
    data = build_sample(2, KOMMUNE, seed=6)
    first = validate_melding(data, ctx).notifications[0]
    history = IplosHistory(bruker_fid={(KOMMUNE, first.bruker_nr): "not-the-same-person"})
    result = validate_melding(data, dataclasses.replace(ctx, history=history))
    assert [f.rule.id for f in result.findings] == ["IPL-BRUKERNR-STABLE"]


def test_only_own_municipalities_may_be_reported() -> None:
    ctx = dataclasses.replace(fault_context(KOMMUNE), allowed_kommuner=frozenset({"1103"}))
    result = validate_melding(build_sample(1, KOMMUNE), ctx)
    assert [f.rule.id for f in result.findings] == ["IPL-KOMMUNE-NOT-ALLOWED"]
    assert result.rejected


def test_contacts_are_extracted_with_innsendingsansvarlig() -> None:
    result = validate_melding(build_sample(1, KOMMUNE), fault_context(KOMMUNE))
    assert [c.type for c in result.contacts] == ["1", "15", "16", "17"]
    assert result.innsendingsansvarlig_emails == ("innsending@kommune.example",)
    assert result.kommuner == (KOMMUNE,)


def test_invalid_warned_values_are_blanked() -> None:
    data = build_sample(2, KOMMUNE, ["IPL-BYDEL-FORMAT"], seed=1)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert result.notifications[-1].bydel is None
    assert not result.notifications[-1].dropped


def test_not_xml_is_t01() -> None:
    result = validate_melding(b"<Melding", fault_context(KOMMUNE))
    assert [f.rule.apprec_code for f in result.findings] == ["T01"]


def test_registry_finds_iplos_by_type_and_namespace() -> None:
    assert lookup("KPR_IPL") is FORMAT
    assert lookup_namespace(NS) is FORMAT
    assert lookup("KPR_IDE") is None
    assert FORMAT.schema_path.is_file()


def test_registry_check_is_the_validator() -> None:
    ctx = ContentContext(
        now=datetime.datetime(2018, 11, 20, tzinfo=datetime.UTC), allow_synthetic=True
    )
    result = FORMAT.check(build_sample(2, KOMMUNE), ctx)
    assert result.findings == ()


# --- numbers: ASCII digits only, løpenummer within BIGINT ---


def _first(data: bytes, attr: bytes, value: str) -> bytes:
    """`data` with the first `attr="..."` set to `value`."""
    start = data.index(b" " + attr + b'="') + len(attr) + 3
    end = data.index(b'"', start)
    return data[:start] + value.encode() + data[end:]


@pytest.mark.parametrize(
    "lopenr",
    [
        "1" * 19,  # above BIGINT
        "9" * 23,  # the reviewer's overflow
        "-1",
        "+1",
        " 1",
        "1 ",
        "",
        "1.0",
        "\u0661",  # Arabic-Indic one
        "\uff11",  # full-width one
        "\u0967",  # Devanagari one
    ],
)
def test_lopenr_must_be_1_to_18_ascii_digits(lopenr: str) -> None:
    data = _first(build_sample(2, KOMMUNE, seed=3), b"notifikasjonLopeNr", lopenr)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert "IPL-LOPENR-FORMAT" in [f.rule.id for f in result.findings]
    assert result.notifications[0].lopenr is None
    assert not result.notifications[0].dropped  # kept without a number (handling 9)


@pytest.mark.parametrize("lopenr", ["1", "0", "007", "9" * 18])
def test_lopenr_of_up_to_18_digits_is_accepted(lopenr: str) -> None:
    data = _first(build_sample(1, KOMMUNE, seed=3), b"notifikasjonLopeNr", lopenr)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert result.findings == ()
    assert result.notifications[0].lopenr == int(lopenr)
    assert result.notifications[0].lopenr < 2**63


@pytest.mark.parametrize(
    ("attr", "value", "rule_id"),
    [
        (b"kommuneNr", "\u0660\u0663\u0660\u0661", "IPL-KOMMUNE-FORMAT"),
        (b"kommuneNr", "\uff10\uff13\uff10\uff11", "IPL-KOMMUNE-FORMAT"),
        (b"bydel", "\u0660\u0663\u0660\u0661", "IPL-BYDEL-FORMAT"),
        (b"meldTelefon", "\u0662" * 8, "IPL-TELEFON-FORMAT"),
        (b"meldTelefon", "+47 " + "\uff19" * 8, "IPL-TELEFON-FORMAT"),
        (b"tjenesteOrgNr", "\u0669" * 9, "IPL-ORGNR-INVALID"),
    ],
)
def test_numbers_in_other_scripts_are_refused(attr: bytes, value: str, rule_id: str) -> None:
    data = _first(build_sample(2, KOMMUNE, seed=3), attr, value)
    result = validate_melding(data, fault_context(KOMMUNE))
    ids = [f.rule.id for f in result.findings]
    companions = COMPANIONS.get(rule_id, ())
    assert [i for i in ids if i not in companions] == [rule_id]
    assert set(ids) == {rule_id, *companions}


def test_ascii_versions_of_those_numbers_pass() -> None:
    data = build_sample(2, KOMMUNE, seed=3)
    for attr, value in ((b"bydel", "0301"), (b"meldTelefon", "+47 22222222")):
        data = _first(data, attr, value)
    assert validate_melding(data, fault_context(KOMMUNE)).findings == ()


def test_a_hendelsedato_with_digits_of_another_script_counts_for_no_year() -> None:
    # the calendar year is read from ASCII digits only (the schema decides whether the date is
    # valid at all)
    data = _first(
        build_sample(1, KOMMUNE, seed=3), b"hendelseDato", "\u0662\u0660\u0661\u0668-01-01"
    )
    result = validate_melding(data, fault_context(KOMMUNE))
    assert result.rejected or not [f for f in result.findings if "CALENDAR" in f.rule.id]


# --- brukerNr <-> fid across kinds of identity ---


def _history_for(data: bytes, fid: str, index: int = 0) -> ContentContext:
    ctx = fault_context(KOMMUNE)
    first = validate_melding(data, ctx).notifications[index]
    return dataclasses.replace(
        ctx, history=IplosHistory(bruker_fid={(KOMMUNE, first.bruker_nr): fid})
    )


def _synthetic(kind: IdKind, seed: int) -> str:
    return synthetic_person_id(random.Random(seed), kind=kind)


def test_a_stored_birth_date_is_no_identity_to_compare() -> None:
    # typeID 9 stores ddmmyy; the real number arriving later is the same person
    data = build_sample(1, KOMMUNE, seed=7)
    result = validate_melding(data, _history_for(data, "010190"))
    assert result.findings == ()


def _h_nummer() -> str:
    """A valid H-nummer (month + 40): the generator makes none (H has no synthetic form)."""
    for individual in range(100, 500):
        base = f"014501{individual}"  # 1 May 2001, month + 40
        for k1 in first_check_digits(base, rule_2032=False):
            k2 = second_check_digit(base + str(k1))
            if k2 is not None:
                number = base + str(k1) + str(k2)
                checked = check_person_id(number)
                assert isinstance(checked, PersonId)
                assert checked.kind is IdKind.HNR
                return number
    raise AssertionError("no H-nummer found")


@pytest.mark.parametrize("old_kind", [IdKind.DNR, IdKind.HNR])
def test_d_or_h_nummer_becoming_a_fodselsnummer_is_a_warning(old_kind: IdKind) -> None:
    data = build_sample(1, KOMMUNE, seed=7)
    old = _synthetic(IdKind.DNR, 5) if old_kind is IdKind.DNR else _h_nummer()
    result = validate_melding(data, _history_for(data, old))
    assert [f.rule.id for f in result.findings] == ["IPL-BRUKERNR-ID-KIND"]
    assert result.findings[0].rule.consequence is Consequence.WARN
    (row,) = result.notifications
    assert not row.dropped
    # the person's new kind of number is what the pair holds from now on (an N row too),
    # so the next message with it is no warning
    ctx = _history_for(data, old)
    after = ctx.history.updated_with(result.notifications)
    assert after.bruker_fid[(KOMMUNE, row.bruker_nr)] == row.fid
    later = data.replace(row.guid.encode(), b"11111111-2222-4333-8444-555555555555")
    again = validate_melding(later, dataclasses.replace(ctx, history=after))
    assert not again.notifications[0].already_stored
    assert not [f for f in again.findings if f.rule.id.startswith("IPL-BRUKERNR")]


def test_fodselsnummer_becoming_a_d_nummer_is_a_warning_too() -> None:
    data = build_sample(1, KOMMUNE, seed=7)
    d_nummer = _synthetic(IdKind.DNR, 9)
    data = _first(_first(data, b"fid", d_nummer), b"typeID", "2")
    result = validate_melding(data, _history_for(data, _synthetic(IdKind.FNR, 9)))
    assert [f.rule.id for f in result.findings] == ["IPL-BRUKERNR-ID-KIND"]


def test_another_number_of_the_same_kind_is_a_warning_and_only_a_correction_moves_the_pair() -> (
    None
):
    data = build_sample(1, KOMMUNE, seed=7)
    old = _synthetic(IdKind.FNR, 11)
    ctx = _history_for(data, old)
    result = validate_melding(data, ctx)
    (finding,) = result.findings
    assert finding.rule.id == "IPL-BRUKERNR-STABLE"
    assert not re.search(r"annen person\b", finding.detail)
    assert "korreksjon" in finding.detail
    (row,) = result.notifications
    assert not row.dropped
    key = (KOMMUNE, row.bruker_nr)
    assert ctx.history.updated_with(result.notifications).bruker_fid[key] == old
    corrected = validate_melding(
        data.replace(b'statusNotifikasjon="N"', b'statusNotifikasjon="M" notifikasjonRef='
                     b'"00000000-0000-4000-8000-000000000001"'),
        ctx,
    )  # fmt: skip
    assert {f.rule.id for f in corrected.findings} == {"IPL-BRUKERNR-STABLE", "IPL-REF-UNKNOWN"}
    assert ctx.history.updated_with(corrected.notifications).bruker_fid[key] == row.fid


@pytest.mark.parametrize(
    ("before", "after", "change"),
    [
        ("fnr", "fnr", FidChange.SAME),
        ("010190", "fnr", FidChange.NO_IDENTITY),
        ("dnr", "fnr", FidChange.KIND),
        ("hnr", "fnr", FidChange.KIND),
        ("fnr", "dnr", FidChange.KIND),
        ("fnr", "other fnr", FidChange.OTHER),
        ("12345678901", "fnr", FidChange.UNREADABLE),
    ],
)
def test_one_classification_says_what_is_warned_and_whether_the_pair_moves(
    before: str, after: str, change: FidChange
) -> None:
    numbers = {
        "fnr": _synthetic(IdKind.FNR, 11),
        "other fnr": _synthetic(IdKind.FNR, 12),
        "dnr": _synthetic(IdKind.DNR, 11),
        "hnr": _h_nummer(),
    }
    old, new = numbers.get(before, before), numbers[after]
    assert fid_change(old, new) is change
    # an N row moves the pair exactly when the change says so; a correction always does
    assert pair_moves(old, new, "N") is change.moves
    assert pair_moves(old, new, "M")
    assert pair_moves(None, new, "N")


def test_kind_change_within_one_message_is_a_warning() -> None:
    data = build_sample(2, KOMMUNE, ["IPL-BRUKERNR-ID-KIND"], seed=4)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert [f.rule.id for f in result.findings] == ["IPL-BRUKERNR-ID-KIND"]
    first, last = result.notifications
    assert first.bruker_nr == last.bruker_nr
    assert (first.type_id, last.type_id) == ("2", "1")
    assert not any(n.dropped for n in result.notifications)


def test_a_birth_date_row_does_not_replace_the_stored_number() -> None:
    ctx = fault_context(KOMMUNE)
    fnr_row = build_sample(1, KOMMUNE, seed=7)
    bruker_nr = validate_melding(fnr_row, ctx).notifications[0].bruker_nr
    fnr = validate_melding(fnr_row, ctx).notifications[0].fid
    history = IplosHistory(bruker_fid={(KOMMUNE, bruker_nr): fnr})
    birth_row = _first(_first(fnr_row, b"fid", "010190"), b"typeID", "9")
    birth = validate_melding(birth_row, dataclasses.replace(ctx, history=history))
    assert birth.findings == ()
    assert birth.notifications[0].identifies_person is False
    after = history.updated_with(birth.notifications)
    assert after.bruker_fid[(KOMMUNE, bruker_nr)] == fnr
    # a birth date for a brukerNr not seen before is not stored either
    assert IplosHistory().updated_with(birth.notifications).bruker_fid == {}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_scenario_yields_its_findings(scenario: str) -> None:
    data = build_sample(3, KOMMUNE, [scenario], seed=7)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert tuple(f.rule.id for f in result.findings) == SCENARIOS[scenario]
    assert not result.rejected
