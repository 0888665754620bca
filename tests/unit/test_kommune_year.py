"""Issue 21 item 9: municipalities as numbered in the reporting year. The shipped lists (2018,
2020, 2024) and SSB's 2020-2024 change list, and IPL-KOMMUNE-YEAR on messages of 2023 and 2024
(pure: no database)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from app.content.iplos.validate import validate_melding
from app.content.model import ContentResult
from app.dev.sample import build_sample, fault_context
from app.kommuner.lists import shipped_list, shipped_years
from app.kommuner.ssb import SsbFormatError, parse_changes, parse_klass_131
from app.kommuner.years import (
    KommuneYears,
    changes_from,
    changes_to,
    renumbered_alike,
    shipped_changes,
)


def _validate(kommune: str, year: int, lists: KommuneYears | None = None) -> ContentResult:
    ctx = dataclasses.replace(fault_context(kommune, year=year), kommune_years=lists)
    return validate_melding(build_sample(3, kommune, seed=21, year=year), ctx)


def _details(result: ContentResult) -> list[str]:
    return [f.detail for f in result.findings if f.rule.id == "IPL-KOMMUNE-YEAR"]


# --- the lists ---------------------------------------------------------------------------


def test_the_product_ships_2018_2020_and_2024() -> None:
    assert shipped_years() == (2018, 2020, 2024)
    assert len(shipped_list(2018)) == 422
    assert len(shipped_list(2023)) == 356  # the 2020 list was in force
    assert len(shipped_list(2024)) == 357
    assert len(shipped_list(2031)) == 357


@pytest.mark.parametrize(("year", "number"), [(2018, "2021"), (2020, "5437"), (2024, "5610")])
def test_karasjok_has_its_name_in_every_list(year: int, number: str) -> None:
    names = {k.kommune_nr: k.name for k in shipped_list(year)}
    assert names[number] == "Kárášjohka - Karasjok"


@pytest.mark.parametrize("year", [2018, 2020, 2024])
def test_the_shipped_lists_are_ssbs_lists(reference_dir: Path, year: int) -> None:
    csv = reference_dir / "kommuner" / f"ssb-klass-131-{year}.csv"
    assert list(shipped_list(year)) == parse_klass_131(csv.read_bytes())


def test_the_shipped_changes_are_ssbs_change_list(reference_dir: Path) -> None:
    csv = (reference_dir / "kommuner" / "ssb-changes-2020-2024.csv").read_bytes()
    theirs = [(c.old, c.new, c.kind) for c in parse_changes(csv)]
    assert [(c.old, c.new, c.kind) for c in shipped_changes()] == theirs
    kinds = [c.kind for c in shipped_changes()]
    assert (kinds.count("renumbered"), kinds.count("split")) == (113, 2)


def test_every_change_leads_from_the_2020_list_into_the_2024_list() -> None:
    old = {k.kommune_nr for k in shipped_list(2020)}
    new = {k.kommune_nr for k in shipped_list(2024)}
    for c in shipped_changes():
        assert c.old in old, c
        assert c.old not in new, c
        assert c.new in new, c


def test_a_change_list_of_another_layout_is_refused() -> None:
    with pytest.raises(SsbFormatError):
        parse_changes(b'"code";"name"\n"0301";"Oslo"\n')
    with pytest.raises(SsbFormatError):
        parse_changes(b'"oldCode";"oldName";"newCode";"newName";"kind"\n"1";"A";"2";"B";"moved"\n')


def test_renumbered_numbers_are_the_same_municipality_a_split_is_not() -> None:
    assert renumbered_alike(["3001"]) == {"3001", "3101"}
    assert renumbered_alike(["3101", "0301"]) == {"3001", "3101", "0301"}
    assert renumbered_alike(["1507"]) == {"1507"}
    assert [c.new for c in changes_from("1507")] == ["1508", "1580"]
    assert [c.old for c in changes_to("1580")] == ["1507"]


# --- IPL-KOMMUNE-YEAR ----------------------------------------------------------------------


def test_an_old_number_in_2024_is_warned_with_the_new_one() -> None:
    result = _validate("3001", 2024)
    assert not result.rejected
    assert [f.rule.id for f in result.findings] == ["IPL-KOMMUNE-YEAR"]
    (detail,) = _details(result)
    assert "Kommunenummer 3001 finnes ikke i SSBs kommuneliste for 2024" in detail
    assert "Fra 01.01.2024 har Halden kommunenummer 3101" in detail
    assert len(result.notifications) == 3  # a warning: every row is taken


def test_alesund_1507_in_2024_has_no_single_successor() -> None:
    (detail,) = _details(_validate("1507", 2024))
    assert "1508 Ålesund og 1580 Haram" in detail
    assert "ingen enkelt etterfølger" in detail


def test_a_new_number_for_an_earlier_year_is_warned_with_the_old_one() -> None:
    (detail,) = _details(_validate("3101", 2023))
    assert "finnes ikke i SSBs kommuneliste for 2023" in detail
    assert "før det hadde Halden kommunenummer 3001" in detail
    (haram,) = _details(_validate("1580", 2023))
    assert "en del av 1507 Ålesund" in haram


@pytest.mark.parametrize(("kommune", "year"), [("3101", 2024), ("3001", 2023), ("0301", 2024)])
def test_a_number_of_the_years_list_is_no_finding(kommune: str, year: int) -> None:
    assert _details(_validate(kommune, year)) == []


def test_only_the_years_whose_list_lacks_the_number_are_warned() -> None:
    # January 2024: three rows of December 2023 and three of January 2024, all under 3001
    ctx = fault_context("3001", year=2024)
    older = build_sample(3, "3001", seed=1, year=2023).replace(b"2023-01-", b"2023-12-")
    newer = build_sample(3, "3001", seed=2, year=2024, start_lopenr=4)
    rows = newer[newer.index(b"<Notifikasjon ") : newer.index(b"<Kontaktperson")]
    mixed = older.replace(b"<Kontaktperson", rows + b"<Kontaktperson", 1)
    details = _details(validate_melding(mixed, ctx))
    assert len(details) == 1
    assert "for 2024" in details[0]


def test_an_imported_list_decides_over_the_shipped_one() -> None:
    imported = KommuneYears({2024: frozenset({"3001"})})
    assert _details(_validate("3001", 2024, imported)) == []
    assert len(_details(_validate("3101", 2024, imported))) == 1


def test_a_message_without_event_dates_is_not_judged() -> None:
    melding = build_sample(0, "3001", seed=3, year=2024)
    result = validate_melding(melding, fault_context("3001", year=2024))
    assert _details(result) == []
