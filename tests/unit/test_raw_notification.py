"""A notification's attributes as sent, packed for the register store: what goes in comes out,
absent attributes stay absent, empty ones stay empty."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.content.model import BRUKER_FIELDS, EVENT_FIELDS, NOTIFIKASJON_FIELDS, RawNotification

# what XML 1.0 allows in an attribute value (no control characters but tab, CR, LF)
values = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], min_codepoint=0x20)
    | st.sampled_from("\t\r\n"),
    max_size=12,
)


def attributes(names: tuple[str, ...]) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(st.sampled_from(names), values, max_size=len(names))


kinds = st.sampled_from(["TjenesteStart", "MidlertidigStoppFra", "TjenesteSlutt"])


@given(
    attributes(NOTIFIKASJON_FIELDS),
    st.lists(st.tuples(kinds, attributes(EVENT_FIELDS), attributes(BRUKER_FIELDS)), max_size=4),
)
def test_what_is_packed_unpacks_to_the_same_attributes(
    attrs: dict[str, str], events: list[tuple[str, dict[str, str], dict[str, str]]]
) -> None:
    raw = RawNotification.of(attrs, events)
    assert raw.attrs == attrs
    assert [(e.kind, dict(e.attrs), dict(e.bruker)) for e in raw.events] == events


def test_attributes_the_module_does_not_use_are_not_kept() -> None:
    raw = RawNotification.of({"notifikasjonTid": "t", "uttakDato": "2018-01-01"}, [])
    assert raw.attrs == {"notifikasjonTid": "t"}
