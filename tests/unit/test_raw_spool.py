"""The packed values of a streamed message wait for the register store in a temporary file
(app/content/model.py `RawSpool`), read back a window at a time: every value must come back
exactly as kept, in any order, also when more are kept after the first read, and a spooled
notification equals the same values held in memory."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from app.content.iplos import validate_melding
from app.content.iplos.stream import stream_only
from app.content.model import RawNotification, RawSpool
from app.dev.sample import build_sample, fault_context
from tests.budgets import examples

# any text a Melding's attribute can hold, multi-byte characters included
VALUES = st.text(st.characters(blacklist_categories=["Cs"]), max_size=3000)


@settings(max_examples=examples(100), deadline=None)
@given(values=st.lists(VALUES, min_size=1, max_size=60), seed=st.integers(0, 2**16))
def test_every_value_reads_back_as_kept_in_any_order(values: list[str], seed: int) -> None:
    spool = RawSpool()
    spool.WINDOW = 512  # windows much smaller than the values: every edge case of a window
    half = len(values) // 2
    where = [spool.add(v) for v in values[:half]]
    if where:  # a read before the rest is kept: what is written later is still found
        assert spool.read(*where[0]) == values[0]
    where += [spool.add(v) for v in values[half:]]
    order = list(range(len(values)))
    random.Random(seed).shuffle(order)
    assert [spool.read(*where[i]) for i in order] == [values[i] for i in order]
    assert [spool.read(*w) for w in where] == values  # in order, as the store reads them


def test_a_spooled_notification_is_the_same_as_one_in_memory() -> None:
    attrs = {"notifikasjonGUID": "g-1", "statusNotifikasjon": "N"}
    events = [("TjenesteStart", {"tjenesteID": "T1"}, {"fid": "12345678901", "typeID": "1"})]
    spool = RawSpool()
    spooled = RawNotification.of(attrs, events, spool)
    held = RawNotification.of(attrs, events)
    assert spooled.text is None
    assert held.text is not None
    assert spooled == held
    assert hash(spooled) == hash(held)
    assert spooled.values() == held.values()
    assert spooled.attrs == attrs
    other = RawNotification.of({**attrs, "statusNotifikasjon": "M"}, events, spool)
    assert other != spooled
    assert spooled.values() == held.values()  # read again after another was kept


def test_a_streamed_message_keeps_its_values_in_the_spool_and_equal_to_the_tree() -> None:
    data = build_sample(20, "0301", [], seed=3)
    ctx = fault_context("0301", [])
    streamed = stream_only(data, ctx)
    assert streamed is not None
    tree = validate_melding(data, ctx)
    raws = [n.raw for n in streamed.notifications]
    assert all(r is not None and r.text is None and r.spool is not None for r in raws)
    assert raws == [n.raw for n in tree.notifications]  # the tree path holds them in memory
    assert all(n.raw is not None and n.raw.text is not None for n in tree.notifications)
