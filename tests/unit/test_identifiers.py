"""Person identifiers (fnr, D, H, synthetic, the 2032 rule) and organisation numbers."""

from __future__ import annotations

import datetime
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.no import fodselsnummer, orgnr

from app.identifiers import (
    CheckRule,
    IdKind,
    IdProblem,
    PersonId,
    check_person_id,
    first_check_digits,
    is_valid_orgnr,
    is_valid_person_id,
    parse_ddmmyy,
    second_check_digit,
    synthetic_orgnr,
    synthetic_person_id,
)

# stdnum's documented example (a made-up number from its doctest), not a real person.
STDNUM_EXAMPLE = "15108695088"
W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def test_classic_fodselsnummer_is_accepted_as_real_fnr() -> None:
    pid = check_person_id(STDNUM_EXAMPLE)
    assert isinstance(pid, PersonId)
    assert pid.kind is IdKind.FNR
    assert not pid.synthetic
    assert pid.birth_date == datetime.date(1986, 10, 15)
    assert pid.check_rule is CheckRule.CLASSIC


def test_wrong_check_digit_is_checksum_problem() -> None:
    assert check_person_id("15108695077") is IdProblem.CHECKSUM


@pytest.mark.parametrize(
    ("number", "problem"),
    [("1510869508", IdProblem.LENGTH), ("1510869508a", IdProblem.NOT_DIGITS)],
)
def test_malformed_numbers_name_their_problem(number: str, problem: IdProblem) -> None:
    assert check_person_id(number) is problem


def test_impossible_date_is_date_problem() -> None:
    # 31 November does not exist; the check digits do not matter
    assert check_person_id("31118600000") is IdProblem.DATE


def _with_checks(base9: str, first: int) -> str:
    ten = base9 + str(first)
    d2 = (11 - sum(w * int(c) for w, c in zip(W2, ten, strict=True)) % 11) % 11
    return ten + str(d2) if d2 != 10 else ""


def test_d_nummer_adds_40_to_the_day() -> None:
    number = _with_checks("551086950", first_check_digits("551086950", rule_2032=False)[0])
    pid = check_person_id(number)
    assert isinstance(pid, PersonId)
    assert pid.kind is IdKind.DNR
    assert pid.birth_date == datetime.date(1986, 10, 15)


def test_h_nummer_adds_40_to_the_month() -> None:
    base = "155086950"
    for first in first_check_digits(base, rule_2032=False):
        number = _with_checks(base, first)
        if number:
            pid = check_person_id(number)
            assert isinstance(pid, PersonId)
            assert pid.kind is IdKind.HNR
            assert pid.birth_date == datetime.date(1986, 10, 15)
            return
    pytest.fail("no valid H-nummer for the chosen base")


def test_synthetic_identity_adds_80_to_the_month_and_is_reported() -> None:
    number = synthetic_person_id(random.Random(1), birth_date=datetime.date(1986, 10, 15))
    pid = check_person_id(number)
    assert isinstance(pid, PersonId)
    assert pid.synthetic
    assert number[2:4] == "90"
    assert pid.birth_date == datetime.date(1986, 10, 15)


def test_2032_check_digit_is_accepted_only_with_the_2032_rule() -> None:
    number = synthetic_person_id(random.Random(3), rule_2032=True)
    pid = check_person_id(number)
    assert isinstance(pid, PersonId)
    assert pid.check_rule is CheckRule.RULE_2032
    assert check_person_id(number, rule_2032=False) is IdProblem.CHECKSUM


@given(st.integers(min_value=0), st.sampled_from([IdKind.FNR, IdKind.DNR]), st.booleans())
def test_generated_synthetic_numbers_are_valid(seed: int, kind: IdKind, rule: bool) -> None:
    number = synthetic_person_id(random.Random(seed), kind=kind, rule_2032=rule)
    pid = check_person_id(number)
    assert isinstance(pid, PersonId)
    assert pid.kind is kind
    assert pid.synthetic
    assert (pid.check_rule is CheckRule.RULE_2032) is rule


@given(st.integers(min_value=0), st.integers(min_value=0, max_value=10), st.integers(1, 9))
def test_classic_rule_detects_every_single_digit_error(seed: int, pos: int, delta: int) -> None:
    number = synthetic_person_id(random.Random(seed))
    changed = number[:pos] + str((int(number[pos]) + delta) % 10) + number[pos + 1 :]
    assert not is_valid_person_id(changed, rule_2032=False)


@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_classic_rule_agrees_with_stdnum_check_digits(number: str) -> None:
    ours = check_person_id(number, rule_2032=False)
    stdnum_checks = number[9] == fodselsnummer.calc_check_digit1(number) and number[
        10
    ] == fodselsnummer.calc_check_digit2(number)
    if ours is IdProblem.CHECKSUM or isinstance(ours, PersonId):
        assert isinstance(ours, PersonId) == stdnum_checks


@given(st.text(max_size=14))
def test_check_person_id_never_raises(value: str) -> None:
    assert isinstance(check_person_id(value), PersonId | IdProblem)


def test_ddmmyy_birth_date() -> None:
    assert parse_ddmmyy("290200") == datetime.date(2000, 2, 29)
    assert parse_ddmmyy("010150") == datetime.date(2050, 1, 1)
    assert parse_ddmmyy("310499") is None
    assert parse_ddmmyy("3104991") is None
    assert parse_ddmmyy("ab0199") is None


def test_orgnr_check_digit() -> None:
    assert is_valid_orgnr("974760673")  # Brønnøysundregistrene's public orgnr
    assert not is_valid_orgnr("974760674")
    assert not is_valid_orgnr("97476067")
    assert not is_valid_orgnr("97476067x")


@given(st.integers(min_value=0))
def test_synthetic_orgnr_is_valid_for_stdnum_too(seed: int) -> None:
    value = synthetic_orgnr(random.Random(seed))
    assert is_valid_orgnr(value)
    assert orgnr.is_valid(value)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_orgnr_agrees_with_stdnum_and_starts_with_8_or_9(value: str) -> None:
    assert is_valid_orgnr(value) == (orgnr.is_valid(value) and value[0] in "89")


@pytest.mark.parametrize("value", ["000000000", "123456785", "700000001"])
def test_orgnr_passing_mod_11_but_not_starting_with_8_or_9_is_refused(value: str) -> None:
    assert orgnr.is_valid(value)  # the check digit alone would accept it
    assert not is_valid_orgnr(value)


def _with_check_digits(nine: str) -> str | None:
    first = first_check_digits(nine, rule_2032=False)
    if not first:
        return None
    ten = nine + str(first[0])
    second = second_check_digit(ten)
    return None if second is None else ten + str(second)


@pytest.mark.parametrize("individual", [750, 800, 899])
def test_h_nummer_with_individual_number_750_to_899_and_year_from_40(individual: int) -> None:
    # made up H-numbers (month + 40) born in 1955: day 15, month 3
    for last in range(individual, individual + 40):
        number = _with_check_digits(f"154355{last:03d}")
        if number is not None and 750 <= last <= 899:
            pid = check_person_id(number)
            assert isinstance(pid, PersonId)
            assert pid.kind is IdKind.HNR
            assert pid.birth_date == datetime.date(1955, 3, 15)
            # the same digits as a fødselsnummer stay invalid (no such individual number)
            assert check_person_id(number[:2] + "03" + number[4:]) is IdProblem.DATE
            return
    pytest.fail("no H-nummer with valid check digits in the range")


# A synthetic 2032-style number (made up: month + 80): its first check digit is one only the
# 2032 rule allows, and individual number 800 with year 75 fits no row of the old table.
NEW_2032 = "15867580074"


def test_a_2032_number_takes_the_latest_birth_date_not_after_the_event() -> None:
    before = check_person_id(NEW_2032, on=datetime.date(2033, 3, 1))
    assert isinstance(before, PersonId)
    assert before.birth_date == datetime.date(1975, 6, 15)
    assert before.check_rule is CheckRule.RULE_2032
    assert before.synthetic
    assert before.kind is IdKind.FNR
    after = check_person_id(NEW_2032, on=datetime.date(2075, 6, 15))  # born that very day
    assert isinstance(after, PersonId)
    assert after.birth_date == datetime.date(2075, 6, 15)


def test_a_2032_number_is_refused_by_the_classic_rules() -> None:
    assert check_person_id(NEW_2032, rule_2032=False) is IdProblem.DATE


def test_a_2032_number_ignores_the_old_century_table() -> None:
    # individual number 100 says 19yy in the old table; a new number says nothing
    base = "151210100"
    classic = first_check_digits(base, rule_2032=False)[0]
    new = next(c for c in first_check_digits(base) if c != classic)
    number = _with_checks(base, new)
    pid = check_person_id(number, on=datetime.date(2040, 1, 1))
    assert isinstance(pid, PersonId)
    assert pid.birth_date == datetime.date(2010, 12, 15)
    old = _with_checks(base, classic)
    classic_pid = check_person_id(old, on=datetime.date(2040, 1, 1))
    assert isinstance(classic_pid, PersonId)
    assert classic_pid.birth_date == datetime.date(1910, 12, 15)


def test_a_classic_check_digit_outside_the_old_table_is_read_by_the_2032_rule() -> None:
    base = "150375800"  # 800 with year 75: no row of the old table
    number = _with_checks(base, first_check_digits(base, rule_2032=False)[0])
    pid = check_person_id(number, on=datetime.date(2033, 1, 1))
    assert isinstance(pid, PersonId)
    assert pid.birth_date == datetime.date(1975, 3, 15)
    assert pid.check_rule is CheckRule.CLASSIC
    assert check_person_id(number, rule_2032=False) is IdProblem.DATE


def test_a_29_february_of_a_2032_number_skips_a_century_without_it() -> None:
    base = "290200800"  # 2000 is a leap year, 1900 is not
    classic = first_check_digits(base, rule_2032=False)[0]
    number = _with_checks(base, next(c for c in first_check_digits(base) if c != classic))
    early = check_person_id(number, on=datetime.date(2000, 2, 28))  # 2000-02-29 is after it
    assert early is IdProblem.DATE  # 1900 and 1800 have no 29 February
    late = check_person_id(number, on=datetime.date(2040, 1, 1))
    assert isinstance(late, PersonId)
    assert late.birth_date == datetime.date(2000, 2, 29)


def test_without_an_event_date_a_2032_number_reads_as_19yy() -> None:
    pid = check_person_id(NEW_2032)
    assert isinstance(pid, PersonId)
    assert pid.birth_date == datetime.date(1975, 6, 15)
