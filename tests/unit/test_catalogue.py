"""The rule catalogue: complete, unique, documented, and docs/rules.md kept current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import catalogue
from app.apprec.model import ERROR_CODES
from app.content.iplos import rules as iplos_rules
from app.core.findings import Consequence, Layer, Rule
from app.ebxml import rules as ebxml_rules
from app.intake import rules as intake_rules
from app.msghead import rules as msghead_rules
from app.security import rules as security_rules

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "rules.md"
# ebMS 2.0 errorCode values (DOMAIN.md §2.1).
EBMS_ERROR_CODES = {
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
RULES = catalogue.all_rules()


def test_docs_rules_md_is_the_current_rendering() -> None:
    # When this fails: python -m app.catalogue --write docs/rules.md
    assert DOCS.read_text(encoding="utf-8") == catalogue.render()


def test_check_mode_exits_1_on_a_stale_file_and_0_on_a_current_one(tmp_path: Path) -> None:
    stale = tmp_path / "rules.md"
    stale.write_text("# old\n", encoding="utf-8")
    assert catalogue.main(["--check", str(stale)]) == 1
    assert catalogue.main(["--check", str(tmp_path / "missing.md")]) == 1
    assert catalogue.main(["--write", str(stale)]) == 0
    assert catalogue.main(["--check", str(stale)]) == 0


def test_catalogue_holds_every_layers_rules() -> None:
    ids = {r.id for r in RULES}
    for module in (ebxml_rules, intake_rules, security_rules, msghead_rules, iplos_rules):
        assert {r.id for r in module.RULES} <= ids, module.__name__
    assert len(RULES) == sum(
        len(m.RULES)
        for m in (ebxml_rules, intake_rules, security_rules, msghead_rules, iplos_rules)
    )


def test_rule_ids_are_unique_across_layers() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_a_duplicate_id_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        catalogue, "_SOURCES", ("app.msghead.rules", "app.msghead.rules"), raising=True
    )
    with pytest.raises(catalogue.DuplicateRuleId, match="MSGHEAD-NOT-XML"):
        catalogue.all_rules()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_rule_has_norwegian_text_and_an_english_title(rule: Rule) -> None:
    assert rule.text_no.strip()
    assert rule.title.strip()
    assert rule.text_no != rule.title


@pytest.mark.parametrize(
    "rule",
    [
        r
        for r in RULES
        if r.consequence
        in {Consequence.REJECT_MESSAGE, Consequence.DROP_NOTIFICATION, Consequence.KEEP_WITH_ERROR}
    ],
    ids=lambda r: r.id,
)
def test_every_rule_that_reaches_an_apprec_has_a_valid_8221_code(rule: Rule) -> None:
    assert rule.apprec_code in ERROR_CODES
    assert rule.ebms_error_code is None


@pytest.mark.parametrize(
    "rule", [r for r in RULES if r.consequence is Consequence.MESSAGE_ERROR], ids=lambda r: r.id
)
def test_every_message_error_rule_has_an_allowed_ebms_error_code(rule: Rule) -> None:
    assert rule.ebms_error_code in EBMS_ERROR_CODES


def test_warnings_carry_no_apprec_code() -> None:
    # Warnings never produce an AppRec Error (app/apprec/mapping.py), so a code would mislead.
    assert [r.id for r in RULES if r.consequence is Consequence.WARN and r.apprec_code] == []


def test_rendering_lists_every_rule_under_its_layer() -> None:
    text = catalogue.render()
    sections = text.split("\n## ")[1:]
    assert len(sections) == len({r.layer for r in RULES}) + 2  # + the handling, the decisions
    for layer in Layer:
        section = next((s for s in sections if s.startswith(catalogue._LAYER_TITLES[layer])), "")
        for rule in (r for r in RULES if r.layer is layer):
            assert f"| `{rule.id}` |" in section, rule.id


def test_rendering_escapes_pipes_in_texts() -> None:
    rule = Rule(
        id="X-PIPE",
        layer=Layer.CONTENT,
        consequence=Consequence.WARN,
        title="a | b",
        text_no="c | d",
    )
    row = next(line for line in catalogue.render([rule]).splitlines() if "X-PIPE" in line)
    assert len(re.findall(r"(?<!\\)\|", row)) == 7  # the table's own six columns only
    assert "a \\| b" in row
    assert "c \\| d" in row


def test_every_content_rule_states_the_annotations_handling() -> None:
    from app.content.iplos.handling import HANDLING, stricter
    from app.content.iplos.rules import RULES as CONTENT

    assert {r.id for r in CONTENT} == set(HANDLING)
    for rule in CONTENT:
        handling = HANDLING[rule.id]
        # a KPR-side rule, or one stricter than the Annotations, says why
        if handling.kpr_side or stricter(rule.consequence, handling):
            assert handling.why, rule.id
    text = catalogue.render()
    assert "## Every rule and the Annotations' handling" in text
    section = text.split("## Every rule and the Annotations' handling")[1]
    for rule in RULES:  # every rule of every layer
        assert f"| `{rule.id}` |" in section, rule.id
    assert "| `IPL-LOPENR-ORDER` | AppRec 1 (warning) |" in text
    assert "| `IPL-FID-INVALID` | AppRec 3 (row kept with its error) |" in text
    assert "`~` followed by the first 35 hex digits of the SHA-256" in text


def test_the_decisions_are_rendered_with_their_rules() -> None:
    from app.content.iplos.decisions import DECISIONS

    text = catalogue.render()
    decisions = text.split("\n## Decisions\n", 1)[1]
    known = {r.id for r in RULES}
    for d in DECISIONS:
        assert f"### {d.title}" in decisions
        assert set(d.rules) <= known, d.title
    assert "15867580074" in decisions  # the 2032 rule's example
