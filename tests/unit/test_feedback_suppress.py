"""The public feedback's cells with crafted counts: 1–4 is "<5", a share that would give such
a count back is suppressed. What a whole page may show together (no subtraction back to a
suppressed cell) is tests/unit/test_feedback_disclosure.py's."""

from __future__ import annotations

import pytest

from app.feedback import suppress
from app.feedback.svg import Bar, bars, timeline


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_counts_from_one_to_four_are_shown_as_under_five(n: int) -> None:
    cell = suppress.count(n)
    assert (cell.value, cell.text, cell.suppressed) == (None, "<5", True)


@pytest.mark.parametrize(("n", "text"), [(0, "0"), (5, "5"), (12345, "12\u00a0345")])
def test_zero_and_five_or_more_are_shown(n: int, text: str) -> None:
    assert suppress.count(n) == suppress.Cell(n, text)


@pytest.mark.parametrize(
    ("num", "den"),
    [(3, 100), (97, 100), (2, 3), (0, 4), (4, 4)],
)
def test_a_share_that_would_give_a_small_count_back_is_suppressed(num: int, den: int) -> None:
    cell = suppress.share(num, den)
    assert cell.value is None
    assert cell.suppressed


def test_a_share_of_large_counts_is_shown() -> None:
    assert suppress.share(25, 200) == suppress.Cell(12.5, "12,5\u00a0%")
    assert suppress.share(0, 200).value == 0.0
    assert suppress.share(200, 200).value == 100.0
    assert suppress.share(1, 0).text == "–"


def test_charts_escape_labels_and_draw_no_bar_for_a_suppressed_value() -> None:
    svg = str(bars("t", [Bar("<script>", None, "<5", 10.0), Bar("b", 50.0, "50 %")]))
    assert "<script>" not in svg
    assert svg.count('class="bar"') == 1
    assert "nasjonal median" in svg
    line = str(timeline("t", [Bar("2018-11", 12.0, "12", 3.0), Bar("2018-12", None, "<5")]))
    assert line.startswith("<svg")
    assert line.count('class="bar"') == 1
    assert "&lt;5" in line
