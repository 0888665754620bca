"""The packed values of a streamed message wait for the register store in a temporary file
(app/content/model.py `RawSpool`), read back a window at a time: every value must come back
exactly as kept, in any order, also when more are kept after the first read, and a spooled
notification equals the same values held in memory."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
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
    spool.IN_MEMORY = 0  # every value to the file
    spool.WINDOW = 512  # windows much smaller than the values: every edge case of a window
    half = len(values) // 2
    where = [_placed(spool, v) for v in values[:half]]
    if where:  # a read before the rest is kept: what is written later is still found
        assert spool.read(*where[0]) == values[0]
    where += [_placed(spool, v) for v in values[half:]]
    order = list(range(len(values)))
    random.Random(seed).shuffle(order)
    assert [spool.read(*where[i]) for i in order] == [values[i] for i in order]
    assert [spool.read(*w) for w in where] == values  # in order, as the store reads them


def _placed(spool: RawSpool, value: str) -> tuple[int, int]:
    where = spool.add(value)
    assert where is not None
    return where


def test_a_spooled_notification_is_the_same_as_one_in_memory() -> None:
    attrs = {"notifikasjonGUID": "g-1", "statusNotifikasjon": "N"}
    events = [("TjenesteStart", {"tjenesteID": "T1"}, {"fid": "12345678901", "typeID": "1"})]
    spool = RawSpool()
    spool.IN_MEMORY = 0
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


def test_a_streamed_message_keeps_its_first_values_in_memory_the_rest_in_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RawSpool, "IN_MEMORY", 3000)  # some notifications' worth
    data = build_sample(20, "0301", [], seed=3)
    ctx = fault_context("0301", [])
    streamed = stream_only(data, ctx)
    assert streamed is not None
    tree = validate_melding(data, ctx)
    raws = [n.raw for n in streamed.notifications]
    assert all(r is not None for r in raws)
    held = [r is not None and r.text is not None for r in raws]
    assert held[0]
    assert not held[-1]
    assert held == sorted(held, reverse=True)  # in memory first, then the file
    assert raws == [n.raw for n in tree.notifications]  # the tree path holds them in memory
    assert all(n.raw is not None and n.raw.text is not None for n in tree.notifications)


def test_a_small_message_needs_no_temporary_directory_and_a_large_one_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Below `IN_MEMORY` no file is made (a read-only or missing TMPDIR changes nothing);
    past it a file that cannot be made is an error, not values dropped."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    data = build_sample(5, "0301", [], seed=3)
    ctx = fault_context("0301", [])
    streamed = stream_only(data, ctx)
    assert streamed is not None
    assert all(n.raw is not None and n.raw.text for n in streamed.notifications)
    monkeypatch.setattr(RawSpool, "IN_MEMORY", 0)
    with pytest.raises(FileNotFoundError):
        stream_only(data, ctx)
