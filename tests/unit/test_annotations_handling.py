"""The content rules against KPR's own Annotations (issue 21): reads
`xsd/iplos-56.0.0/XPR(ipl)_Annotations.xsd` from KPR_REFERENCE_DIR and checks that every
handling code app/content/iplos/handling.py states (and docs/rules.md shows) is the one the
file gives, and that no rule removes more (a row, the message) than the handling of what it
checks lets it, unless it records why. Rules without an Annotations entry are KPR-side and
must say why they exist."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from app import catalogue
from app.content.iplos.handling import CHECKS, HANDLING, allowed, expand, stricter
from app.content.iplos.rules import RULES
from app.core.findings import Consequence, Rule

_XS = "{http://www.w3.org/2001/XMLSchema}"
_NPR = "{http://www.npr.no/xmlstds/56_0_0_ipl}"
_HANDLING_OF = {
    "obligat": "handlingObligatID",
    "type": "handlingTypeID",
    "kodeverk": "handlingKodeverkID",
    "range": "handlingRangeCheckID",
}

Entries = dict[tuple[str, str], dict[str, str]]


@pytest.fixture(scope="module")
def entries(reference_dir: Path) -> Entries:
    """(class, attribute) -> the entry's appinfo values."""
    path = reference_dir / "xsd" / "iplos-56.0.0" / "XPR(ipl)_Annotations.xsd"
    out: Entries = {}
    for appinfo in etree.parse(str(path)).iter(f"{_XS}appinfo"):
        values: dict[str, str] = {}
        for info in appinfo.iter(f"{_NPR}xprAppInfo"):
            value = info.get("value")
            values[info.get("name") or ""] = (
                value if value is not None else info.text or ""
            ).strip()
        if "classShortName" in values:
            out[(values["classShortName"], values["attributeShortName"])] = values
    return out


def _code(entries: Entries, ref: str) -> set[str]:
    codes: set[str] = set()
    for cls, attribute, check in expand(ref):
        entry = entries.get((cls, attribute))
        assert entry is not None, f"{ref}: no Annotations entry for {cls}/@{attribute}"
        assert check in CHECKS, ref
        code = entry.get(_HANDLING_OF[check], "")
        assert code, f"{ref}: the Annotations give {cls}/@{attribute} no {check} handling"
        codes.add(code)
    return codes


def test_the_annotations_are_read(entries: Entries) -> None:
    # 64 entries; the ones issue 21 is about
    assert len(entries) == 64
    assert entries[("Notifikasjon", "notifikasjonGUID")]["handlingObligatID"] == "1"
    assert entries[("Notifikasjon", "notifikasjonGUID")]["handlingTypeID"] == "9"
    assert entries[("Bruker", "fid")]["handlingTypeID"] == "9"
    assert entries[("Bruker", "typeID")]["handlingKodeverkID"] == "2"
    assert entries[("Melding", "uttakDato")]["moduleConstraint"] == "I"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_each_rule_states_the_handling_the_annotations_give(rule: Rule, entries: Entries) -> None:
    handling = HANDLING[rule.id]
    if handling.kpr_side:
        # no Annotations entry: a KPR-side rule, with its reason
        assert handling.code == "–", rule.id
        assert handling.why.strip(), f"{rule.id}: a KPR-side rule says why it exists"
        return
    codes = set().union(*(_code(entries, ref) for ref in handling.refs))
    assert handling.code == ", ".join(sorted(codes, key=int)), rule.id


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_no_rule_is_stricter_than_its_handling_without_a_reason(rule: Rule) -> None:
    handling = HANDLING[rule.id]
    if stricter(rule.consequence, handling):
        assert handling.why.strip(), (
            f"{rule.id} ({rule.consequence.value}) removes more than handling "
            f"{handling.code} lets it, and gives no reason"
        )


def test_only_recorded_rules_are_stricter_than_the_annotations() -> None:
    # issue 21: everything else that checks a handling-9 value keeps the row; adding a rule to
    # this list is a decision docs/rules.md must explain
    strict = sorted(r.id for r in RULES if stricter(r.consequence, HANDLING[r.id]))
    assert strict == ["IPL-KOMMUNE-FORMAT", "IPL-XSD"]


@pytest.mark.parametrize(
    "rule_id",
    [
        "IPL-FID-INVALID",
        "IPL-FID-DATE",
        "IPL-TJENESTETYPE-CODE",
        "IPL-ORGNR-REQUIRED",
        "IPL-STATUS-CODE",
        "IPL-REF-MISSING",
        "IPL-EVENT-COUNT",
        "IPL-XSD-VALUE",
    ],
)
def test_the_rules_issue_21_names_keep_the_row(rule_id: str) -> None:
    rule = next(r for r in RULES if r.id == rule_id)
    assert rule.consequence is Consequence.KEEP_WITH_ERROR


def test_allowed_reads_the_strictest_handling() -> None:
    assert allowed("1") == 2
    assert allowed("2") == 1
    assert allowed("1, 9") == 0
    assert allowed("–") == 0


def test_rules_md_shows_every_rule_with_its_handling() -> None:
    text = catalogue.render()
    section = text.split("## Every rule and the Annotations' handling")[1]
    for rule in RULES:
        handling = HANDLING[rule.id]
        shown = "KPR-side" if handling.kpr_side else handling.code
        assert f"| `{rule.id}` | " in section
        line = next(x for x in section.splitlines() if x.startswith(f"| `{rule.id}` |"))
        assert f"| {shown} |" in line, line
