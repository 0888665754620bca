"""The public feedback's cells and their texts. Pure, no I/O.

A count from 1 to 4 is shown as "<5" (`SMALL`), and so is a share whose numerator, denominator
or complement (denominator minus numerator) is from 1 to 4. A municipality's figures are
decided together by `app.feedback.disclosure` (primary suppression, then secondary until no
suppressed cell can be narrowed down: `app.feedback.audit`); `count` and `share` serve the
national figures, which are sums of published cells only.
"""

from __future__ import annotations

from dataclasses import dataclass

SMALL = "<5"  # a count from 1 to 4
HIDDEN = "skjult"  # suppressed so that a suppressed cell cannot be had back by subtraction
NONE = "–"  # nothing to show (no denominator)
LIMIT = 5


@dataclass(frozen=True, slots=True)
class Cell:
    """A figure as published: `value` is None whenever it is suppressed."""

    value: float | None
    text: str
    suppressed: bool = False


def small(n: int) -> bool:
    return 0 < n < LIMIT


def fmt_int(n: int) -> str:
    return f"{n:,}".replace(",", "\u00a0")  # Norwegian: a (non-breaking) space per thousand


def fmt_pct(p: float) -> str:
    return f"{p:.1f}".replace(".", ",") + "\u00a0%"


def count(n: int) -> Cell:
    if small(n):
        return Cell(None, SMALL, True)
    return Cell(n, fmt_int(n))


def share(numerator: int, denominator: int) -> Cell:
    """numerator/denominator in per cent, suppressed when any of numerator, denominator and
    their difference is from 1 to 4."""
    if denominator <= 0:
        return Cell(None, NONE)
    if small(numerator) or small(denominator) or small(denominator - numerator):
        return Cell(None, SMALL, True)
    pct = 100.0 * numerator / denominator
    return Cell(round(pct, 1), fmt_pct(pct))
