"""Suppression of the public feedback with crafted counts: 1–4 is "<5", a share that would
give such a count back is suppressed, and a total never lets a reader subtract back to a
suppressed cell."""

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


def test_one_suppressed_part_takes_the_smallest_other_part_with_it() -> None:
    # 3 + 30 + 7 = 40 shown: without a second cell, 40 - 30 - 7 = 3
    cells, total = suppress.group({"a": 3, "b": 30, "c": 7}, 40)
    assert cells["a"].text == "<5"
    assert cells["c"].text == suppress.HIDDEN
    assert cells["c"].value is None
    assert cells["b"].value == 30
    assert total is not None
    assert total.value == 40


def test_a_zero_part_is_no_cover_for_a_suppressed_one() -> None:
    cells, total = suppress.group({"a": 2, "b": 0, "c": 9, "d": 6}, 17)
    assert cells["b"].value == 0
    assert cells["d"].text == suppress.HIDDEN
    assert cells["c"].value == 9
    assert total is not None
    assert total.value == 17


def test_with_no_other_part_the_total_goes() -> None:
    # only the small part and zeros: the total equals the small part
    cells, total = suppress.group({"a": 3, "b": 0}, 3)
    assert cells["a"].text == "<5"
    assert total is not None
    assert total.text == "<5"


def test_two_suppressed_parts_need_no_more() -> None:
    cells, total = suppress.group({"a": 1, "b": 2, "c": 50}, 53)
    assert [cells[k].text for k in "abc"] == ["<5", "<5", "50"]
    assert total is not None
    assert total.value == 53


def test_without_a_shown_total_nothing_more_is_suppressed() -> None:
    cells, total = suppress.group({"a": 3, "b": 30}, None)
    assert cells["b"].value == 30
    assert total is None


def test_no_published_figure_of_any_group_lets_a_subtraction_reach_a_small_cell() -> None:
    """Brute force over small groups: whenever exactly the shown parts and the total are known,
    the suppressed parts' sum is never a single small cell."""
    import itertools

    for parts in itertools.product(range(0, 9), repeat=3):
        named = dict(zip("abc", parts, strict=True))
        cells, total = suppress.group(named, sum(parts))
        hidden = [k for k, c in cells.items() if c.value is None]
        small = [k for k, n in named.items() if 0 < n < 5]
        assert set(small) <= set(hidden)
        if total is not None and total.value is not None:
            # the reader can compute the sum of the hidden cells; it must not be one cell
            assert len(hidden) != 1


def test_charts_escape_labels_and_draw_no_bar_for_a_suppressed_value() -> None:
    svg = str(bars("t", [Bar("<script>", None, "<5", 10.0), Bar("b", 50.0, "50 %")]))
    assert "<script>" not in svg
    assert svg.count('class="bar"') == 1
    assert "nasjonal median" in svg
    line = str(timeline("t", [Bar("2018-11", 12.0, "12", 3.0), Bar("2018-12", None, "<5")]))
    assert line.startswith("<svg")
    assert line.count('class="bar"') == 1
    assert "&lt;5" in line
