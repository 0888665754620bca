"""The disclosure audit and the suppression it drives (issue 20, hole 4): no suppressed cell
of a municipality's page can be narrowed down from the rest of what the page publishes."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from app.feedback import disclosure
from app.feedback.audit import (
    Constraint,
    Publication,
    Share,
    Status,
    Table,
    audit,
    bounds,
    passes,
    published,
)
from tests.budgets import examples
from tests.feedback_draws import Drawn, municipality, users

S, SMALL, HIDDEN = Status.SHOWN, Status.SMALL, Status.HIDDEN

# the reported case: 20 users, 17 with type 21 (one also with type 4), 3 with type 15 only
REPORTED = {
    ("users", "total"): (20, 0),
    ("users", "long_term"): (17, 0),
    ("users", "home"): (3, 0),
    ("users", "other"): (0, 0),
    ("tjeneste", "21"): (17, 0),
    ("tjeneste", "4"): (1, 0),
    ("tjeneste", "15"): (3, 0),
    ("tjeneste_stopp", "21"): (0, 0),
    ("tjeneste_stopp", "4"): (0, 0),
    ("tjeneste_stopp", "15"): (0, 0),
}


def test_the_reported_case_is_flagged_under_the_old_suppression() -> None:
    """The page showed users 20, long-term "skjult", home "<5", other 0 and service 21 = 17:
    long-term is service 21, so home = 20 - 17 - 0 = 3."""
    table, _ = disclosure.users_part(REPORTED)
    old = Publication(
        counts={
            "U": S,
            "g:long_term": HIDDEN,
            "g:home": SMALL,
            "g:other": S,
            "t:21": S,
            "t:4": SMALL,
            "t:15": SMALL,
            "s:21": S,
            "s:4": S,
            "s:15": S,
        },
        shares={
            "t:21:share": SMALL,  # its complement, 3, is small
            "t:4:share": SMALL,
            "t:15:share": SMALL,
            "g:long_term:share": HIDDEN,
            "g:home:share": SMALL,
            "g:other:share": S,
        },
    )
    found = {f.label: f for f in audit(table, old)}
    assert (found["g:home"].lo, found["g:home"].hi) == (3, 3)
    assert (found["g:long_term"].lo, found["g:long_term"].hi) == (17, 17)
    assert "t:21" in found["g:home"].binding  # it is the 17 that gives it away


def test_the_reported_case_passes_with_the_new_suppression() -> None:
    table, pub = disclosure.users_part(REPORTED)
    assert audit(table, pub) == []
    assert pub.counts["g:home"] is not S
    assert pub.counts["t:21"] is not S  # long-term is service 21: never one without the other
    assert pub.counts["g:long_term"] is not S
    assert pub.counts["U"] is S  # the parts went, the total stays
    home = bounds(table, pub, {"home": {"g:home": 1.0}})["home"]
    assert home[0] <= 1
    assert home[1] >= 4


def _sum_table(parts: list[int]) -> Table:
    names = [f"p{i}" for i in range(len(parts))]
    t = Table(values={"T": sum(parts), **dict(zip(names, parts, strict=True))})
    t.counts = ["T", *names]
    t.totals = {"T"}
    t.relate({"T": 1.0, **dict.fromkeys(names, -1.0)}, 0, 0)
    return t


def test_a_total_minus_the_shown_parts_gives_a_single_hidden_part_back() -> None:
    t = _sum_table([3, 30, 7])
    pub = Publication({"T": S, "p0": SMALL, "p1": S, "p2": S}, {})
    [finding] = audit(t, pub)
    assert (finding.label, finding.lo, finding.hi) == ("p0", 3, 3)
    fixed = disclosure.protect(t)
    assert audit(t, fixed) == []
    # the smallest other part goes, as before; and since 3 + 7 = 10 with "<5" would leave
    # the 7 from 6 to 9, the "<5" becomes "skjult"
    assert (fixed.counts["p0"], fixed.counts["p2"]) == (HIDDEN, HIDDEN)
    assert fixed.counts["T"] is S
    assert fixed.counts["p1"] is S


def test_a_hidden_cell_must_stay_five_wide() -> None:
    t = _sum_table([3, 30, 7])
    narrow = Publication({"T": S, "p0": SMALL, "p1": S, "p2": HIDDEN}, {})
    [finding] = audit(t, narrow)
    assert (finding.label, finding.lo, finding.hi) == ("p2", 6, 9)
    assert audit(t, Publication({"T": S, "p0": HIDDEN, "p1": S, "p2": HIDDEN}, {})) == []
    both = Publication({"T": S, "p0": SMALL, "p1": S, "p2": SMALL}, {})
    assert audit(_sum_table([3, 30, 2]), both) == []  # 5 = 1 + 4 = ... = 4 + 1
    # 3 + 1 = 4: neither can be 4
    assert {f.label for f in audit(_sum_table([3, 30, 1]), both)} == {"p0", "p2"}


def test_a_shown_share_and_its_denominator_give_the_numerator_back() -> None:
    t = Table(values={"n": 3, "d": 40}, counts=["d"])
    t.shares["s"] = Share("s", {"n": 1.0}, {"d": 1.0})
    assert {f.label for f in audit(t, Publication({"d": S}, {"s": S}))} == {"s:num"}
    assert audit(t, Publication({"d": S}, {"s": SMALL})) == []
    # over a large denominator the one decimal leaves the numerator 5 or more wide
    big = Table(values={"n": 123, "d": 10000, "c": 1}, counts=["d", "c"])
    big.shares["s"] = Share("s", {"n": 1.0}, {"d": 1.0})
    low, high, _ = bounds(big, Publication({"d": S, "c": SMALL}, {"s": S}), {"n": {"n": 1.0}})["n"]
    assert (low, high) == (115, 125)  # 1,2 % of 10 000
    assert passes(123, low, high)


def test_a_share_with_no_denominator_says_it_is_zero() -> None:
    t = Table(values={"n": 0, "d": 0})
    t.shares["s"] = Share("s", {"n": 1.0}, {"d": 1.0})
    assert Constraint({"d": 1.0}, 0, 0, "s") in published(t, disclosure.primary(t))


def test_the_bounds_are_the_integer_bounds_of_a_sum() -> None:
    """Brute force: for parts adding up to a shown total, the audit's range of each hidden
    part is exactly the range over every integer solution consistent with the page."""
    for parts in itertools.product(range(0, 7), repeat=3):
        t = _sum_table(list(parts))
        pub = disclosure.protect(t)
        names = ["p0", "p1", "p2"]
        hidden = [n for n in names if pub.counts[n] is not S]
        if not hidden or pub.counts["T"] is not S:
            continue
        solutions = []
        for guess in itertools.product(range(0, t.values["T"] + 1), repeat=3):
            ok = sum(guess) == t.values["T"]
            for n, g in zip(names, guess, strict=True):
                status = pub.counts[n]
                ok &= (
                    (status is S and g == t.values[n])
                    or (status is SMALL and 1 <= g <= 4)
                    or (status is HIDDEN)
                )
            if ok:
                solutions.append(dict(zip(names, guess, strict=True)))
        found = bounds(t, pub, {n: {n: 1.0} for n in hidden})
        for n in hidden:
            exact = (min(s[n] for s in solutions), max(s[n] for s in solutions))
            assert found[n][:2] == exact, (parts, n)
        assert audit(t, pub) == []


def test_months_that_add_up_to_a_small_total_are_hidden() -> None:
    # 1 + 1 under a "<5" total would say the total is at least 2
    t = disclosure.messages_table(2, 40, 0, True, {"2018-11": 1, "2018-12": 1}, {}, {})
    assert audit(t, disclosure.primary(t)) != []
    pub = disclosure.protect(t)
    assert audit(t, pub) == []
    assert pub.counts["M"] is SMALL
    assert pub.counts["A"] is S


def _check(d: Drawn) -> None:
    for kind, (table, pub) in [
        ("messages", disclosure.messages_part("0301", d, d.counts)),
        ("users", disclosure.users_part(d.counts)),
    ]:
        assert audit(table, pub) == [], kind
        for var in table.counts:  # every small count is suppressed
            if 0 < table.values[var] < 5:
                assert pub.counts[var] is not S, (kind, var)


@settings(max_examples=examples(300, floor=20))
@given(users())
def test_no_users_table_lets_a_suppressed_cell_be_narrowed_down(
    counts: dict[tuple[str, str], tuple[int, int]],
) -> None:
    table, pub = disclosure.users_part(counts)
    assert audit(table, pub) == []


@settings(max_examples=examples(200, floor=20))
@given(municipality())
def test_no_municipality_page_lets_a_suppressed_cell_be_narrowed_down(d: Drawn) -> None:
    _check(d)


@settings(max_examples=examples(50, floor=10))
@given(st.lists(st.integers(0, 12), min_size=1, max_size=12), st.integers(0, 50))
def test_months_and_accepted_pass_the_audit(months: list[int], accepted: int) -> None:
    named = {f"2018-{i + 1:02d}": n for i, n in enumerate(months) if n > 0}
    t = disclosure.messages_table(sum(named.values()), accepted, 0, bool(named), named, {}, {})
    assert audit(t, disclosure.protect(t)) == []
