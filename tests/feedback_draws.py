"""Random municipalities' feedback aggregates for the disclosure property tests: drawn as
persons with services (so the users' figures are consistent the way the refresh's are) and
messages with months, items and rules (consistent the way `app.feedback.refresh` makes
them). `counts` is `feedback_count`'s (kind, key) -> (value, total)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from app.feedback.codes import AT_HOME, LONG_TERM

TYPES = ["1", "2", "4", "15", "21", "18", "8"]  # at home, long-term and other stays


@dataclass
class Drawn:
    messages: int
    accepted: int
    failed: int
    counts: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    @property
    def readable(self) -> int:
        return 1 if self.messages else 0


def _count(draw: st.DrawFn, high: int) -> int:
    """Small counts often (the cases that matter), larger ones too."""
    return draw(st.one_of(st.integers(0, 6), st.integers(0, high)))


@st.composite
def users(draw: st.DrawFn) -> dict[tuple[str, str], tuple[int, int]]:
    people = draw(
        st.lists(
            st.dictionaries(st.sampled_from(TYPES), st.booleans(), min_size=1, max_size=3),
            max_size=draw(st.sampled_from([4, 12, 40])),
        )
    )
    out: dict[tuple[str, str], tuple[int, int]] = {}
    if not people:
        return out
    long_term = sum(1 for p in people if LONG_TERM & set(p))
    home = sum(1 for p in people if not LONG_TERM & set(p) and AT_HOME & set(p))
    out[("users", "total")] = (len(people), 0)
    out[("users", "long_term")] = (long_term, 0)
    out[("users", "home")] = (home, 0)
    out[("users", "other")] = (len(people) - long_term - home, 0)
    for code in TYPES:
        having = [p for p in people if code in p]
        if having:
            out[("tjeneste", code)] = (len(having), 0)
            out[("tjeneste_stopp", code)] = (sum(1 for p in having if p[code]), 0)
    return out


@st.composite
def municipality(draw: st.DrawFn) -> Drawn:
    """One municipality's aggregates of one year and environment."""
    months = {f"2018-{m:02d}": _count(draw, 40) for m in draw(st.sets(st.integers(1, 12)))}
    months = {k: v for k, v in months.items() if v > 0}
    messages = sum(months.values())
    accepted = _count(draw, 300) if messages else 0
    failed = _count(draw, 30) if messages else 0
    d = Drawn(messages, accepted, failed, draw(users()) if messages else {})
    if not messages:
        return d
    for k, v in months.items():
        d.counts[("month", k)] = (v, 0)
    events = accepted + _count(draw, 100)
    person_events = _count(draw, 200)
    mc = draw(st.integers(0, accepted))
    changed = draw(st.integers(0, events))
    for key, base in [
        ("lopenr", accepted),
        ("ref", mc),
        ("hendelse_dato", events),
        ("tjeneste_id", events),
        ("org_nr", events),
        ("org_nr_changed", changed),
        ("type_id", person_events),
    ]:
        filled = draw(st.one_of(st.just(base), st.integers(0, base)))
        d.counts[("item", key)] = (filled, base)
    for i in range(draw(st.integers(0, 3))):
        if failed and draw(st.booleans()):
            d.counts[("rule_error", f"IPL-E{i}")] = (draw(st.integers(1, failed)), 0)
        else:  # about whole messages
            d.counts[("rule_error", f"IPL-M{i}")] = (0, draw(st.integers(1, messages)))
    for i in range(draw(st.integers(0, 2))):
        received = accepted + failed
        if received:
            d.counts[("rule_warn", f"IPL-W{i}")] = (draw(st.integers(1, received)), 0)
    return d
