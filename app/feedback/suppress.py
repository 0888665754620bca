"""Statistical disclosure control for the public feedback. Pure, no I/O.

Primary suppression: every count from 1 to 4 is shown as "<5" (`SMALL`), and so is a share
whose numerator, denominator or complement (denominator minus numerator) is from 1 to 4: the
share and a shown denominator would give the count back.

Secondary suppression: where parts add up to a total the reader also sees, one suppressed part
could be had back by subtraction. Then the smallest other non-zero part is suppressed too
(shown as `HIDDEN`); when no such part exists, the total is. Applied to every group that adds
up: the user groups, the submissions per month, the per-municipality columns of the overview
against the national figures, and the users per service type when they happen to add up.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def hidden() -> Cell:
    return Cell(None, HIDDEN, True)


def share(numerator: int, denominator: int, *, hide: bool = False) -> Cell:
    """numerator/denominator in per cent, suppressed when any of numerator, denominator and
    their difference is from 1 to 4, or when `hide` (a secondary suppression)."""
    if denominator <= 0:
        return Cell(None, NONE)
    if hide:
        return hidden()
    if small(numerator) or small(denominator) or small(denominator - numerator):
        return Cell(None, SMALL, True)
    pct = 100.0 * numerator / denominator
    return Cell(round(pct, 1), fmt_pct(pct))


def secondary(parts: Mapping[str, int], total: int | None) -> tuple[set[str], bool]:
    """Which parts to suppress (primary and secondary), and whether the total must be too.

    `total` is the total a reader sees (None when none is shown). With one suppressed part and
    a shown total, the smallest other non-zero part goes as well; with none to take, the
    total goes."""
    suppressed = {k for k, n in parts.items() if small(n)}
    if total is None or small(total) or len(suppressed) != 1:
        return suppressed, total is not None and small(total)
    candidates = sorted((n, k) for k, n in parts.items() if k not in suppressed and n > 0)
    if candidates:
        suppressed.add(candidates[0][1])
        return suppressed, False
    return suppressed, True


def group(parts: Mapping[str, int], total: int | None) -> tuple[dict[str, Cell], Cell | None]:
    """The parts and the total as published, with primary and secondary suppression."""
    gone, total_gone = secondary(parts, total)
    cells = {k: count(n) if k not in gone or small(n) else hidden() for k, n in parts.items()}
    total_cell = None
    if total is not None:
        total_cell = count(total) if small(total) or not total_gone else hidden()
    return cells, total_cell
