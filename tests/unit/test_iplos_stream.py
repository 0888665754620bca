"""The streaming IPLOS validator (app/content/iplos/stream.py) finds exactly what the tree
path (validate_melding) finds: on every fault and scenario of the sample generator, on schema
mutations, on random damage, and on a 100 000-notification message."""

from __future__ import annotations

import io
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from app.content import lookup
from app.content.iplos import FORMAT, RULES, validate_melding
from app.content.iplos.stream import (
    stream_history_keys,
    stream_only,
    validate_msghead_content,
    validate_stream,
)
from app.content.iplos.validate import history_keys
from app.content.model import ContentResult
from app.dev.sample import SCENARIOS, build_sample, fault_context

KOMMUNE = "0301"
FAULTS = [r.id for r in RULES] + list(SCENARIOS)
# Faults the schema or the parser answers by rejecting the message: the tree path words them.
HANDED_OVER = {"IPL-NOT-XML", "IPL-XSD", "IPL-KOMMUNE-UNIQUE", "IPL-FID-MISSING"}


def _element(data: bytes) -> etree._Element:
    """The Melding inside a Content wrapper, as MsgHead hands it over."""
    body = data.split(b"?>", 1)[1] if data.startswith(b"<?xml") else data
    wrapper = etree.fromstring(b"<Content>" + body + b"</Content>", etree.XMLParser(huge_tree=True))
    return wrapper[0]


def _assert_same(tree: ContentResult, data: bytes, ctx: object) -> None:
    assert validate_stream(data, ctx) == tree  # type: ignore[arg-type]
    assert validate_stream(io.BytesIO(data), ctx) == tree  # type: ignore[arg-type]


def test_the_plug_in_checks_by_streaming() -> None:
    assert FORMAT.check is validate_stream
    fmt = lookup("KPR_IPL")
    assert fmt is not None
    assert fmt.check is validate_stream


@pytest.mark.parametrize("fault", FAULTS)
def test_stream_finds_what_the_tree_finds_for_each_fault(fault: str) -> None:
    data = build_sample(3, KOMMUNE, [fault], seed=7)
    ctx = fault_context(KOMMUNE, [fault])
    tree = validate_melding(data, ctx)
    assert tree.findings or fault in SCENARIOS
    streamed = stream_only(data, ctx)
    if fault in HANDED_OVER:
        assert streamed is None
    else:
        assert streamed == tree
    _assert_same(tree, data, ctx)


@pytest.mark.parametrize("fault", [f for f in FAULTS if f != "IPL-NOT-XML"])  # MsgHead parses it
def test_stream_of_the_msghead_element_finds_what_the_tree_finds(fault: str) -> None:
    data = build_sample(4, KOMMUNE, [fault], seed=3)
    ctx = fault_context(KOMMUNE, [fault])
    tree = validate_melding(_element(data), ctx)
    assert validate_stream(_element(data), ctx) == tree


def _second_notification(data: bytes, before: bytes, after: bytes) -> bytes:
    at = data.index(b"<Notifikasjon ", data.index(b"<Notifikasjon ") + 1)
    return data[:at] + data[at:].replace(before, after, 1)


MUTATIONS = {
    "prohibited-melding-attribute": lambda d: d.replace(
        b'meldingstype="K"', b'meldingstype="K" lopenr="1"'
    ),
    "wrong-meldingstype": lambda d: d.replace(b'meldingstype="K"', b'meldingstype="B"'),
    "bad-guid": lambda d: d.replace(b'notifikasjonGUID="', b'notifikasjonGUID="x', 1),
    "bad-date-everywhere": lambda d: d.replace(
        b'hendelseDato="2018-01-0', b'hendelseDato="2018-13-0'
    ),
    "no-kommune": lambda d: d.replace(b'<Kommune kommuneNr="0301"/>', b""),
    "long-bydel": lambda d: d.replace(b'bydel="030101"', b'bydel="0301011"', 1),
    "unknown-element-at-end": lambda d: d.replace(b"</Melding>", b"<Annet/></Melding>"),
    "unknown-element-in-notification": lambda d: d.replace(
        b"</Notifikasjon>", b"<Annet/></Notifikasjon>", 1
    ),
    "wrong-namespace": lambda d: d.replace(b"56_0_0_ipl", b"other"),
    "missing-tjenesteOrgNr": lambda d: d.replace(b"TjenesteStart", b"TjenesteutforerEndret", 4),
    "renamed-brukerNr": lambda d: d.replace(b" brukerNr=", b" xbrukerNr=", 1),
    "prohibited-kjonn": lambda d: d.replace(b'typeID="1"', b'typeID="1" kjonn="1"', 1),
    "second-fid-renamed": lambda d: _second_notification(d, b' fid="', b' xfid="'),
    "second-typeid-missing": lambda d: _second_notification(d, b' typeID="1"', b""),
    "second-guid-bad": lambda d: _second_notification(
        d, b' notifikasjonGUID="', b' notifikasjonGUID="x'
    ),
    "notification-after-the-contacts": lambda d: d.replace(
        b"</Melding>",
        d[d.index(b"<Notifikasjon ") : d.index(b"</Notifikasjon>") + 15] + b"</Melding>",
    ),
    "kontakt-attribute-not-allowed": lambda d: d.replace(
        b"<Kontaktperson ", b'<Kontaktperson farge="bla" ', 1
    ),
    "text-in-melding": lambda d: d.replace(b"<Kommune ", b"tekst<Kommune ", 1),
    "doctype": lambda d: d.replace(b"<Melding", b"<!DOCTYPE Melding><Melding", 1),
    "truncated": lambda d: d[: len(d) // 2],
    "empty": lambda d: b"",
    "comment-and-pi": lambda d: d.replace(
        b"<Kommune ", b"<!-- merknad --><?behandling x?><Kommune ", 1
    ),
}


@pytest.mark.parametrize("mutate", list(MUTATIONS.values()), ids=list(MUTATIONS))
def test_stream_finds_what_the_tree_finds_after_a_mutation(mutate: object) -> None:
    data: bytes = mutate(build_sample(6, KOMMUNE, seed=3))  # type: ignore[operator]
    ctx = fault_context(KOMMUNE)
    _assert_same(validate_melding(data, ctx), data, ctx)


def test_row_schema_errors_are_placed_per_row_without_the_tree() -> None:
    data = build_sample(300, KOMMUNE, seed=5).replace(
        b'hendelseDato="2018-01-0', b'hendelseDato="2018-13-0'
    )
    ctx = fault_context(KOMMUNE)
    streamed = stream_only(data, ctx)
    assert streamed is not None
    assert streamed == validate_melding(data, ctx)
    assert len([n for n in streamed.notifications if "IPL-XSD-VALUE" in n.errors]) > 50
    assert {f.rule.id for f in streamed.findings} == {"IPL-XSD-VALUE"}


def test_a_binary_file_is_read_from_its_position_also_when_handed_over() -> None:
    ctx = fault_context(KOMMUNE, ["IPL-XSD"])
    data = build_sample(3, KOMMUNE, ["IPL-XSD"], seed=7)
    spool = io.BytesIO(b"junk" + data)
    spool.seek(4)
    assert validate_stream(spool, ctx) == validate_melding(data, ctx)


_ATTRIBUTE = st.sampled_from(
    [
        b"notifikasjonGUID",
        b"notifikasjonLopeNr",
        b"statusNotifikasjon",
        b"notifikasjonForrigeGUID",
        b"hendelseDato",
        b"tjenesteType",
        b"brukerNr",
        b"fid",
        b"typeID",
        b"bydel",
        b"kommuneNr",
        b"typeKontaktperson",
        b"meldEpost1",
        b"versjon",
    ]
)


@given(
    attribute=_ATTRIBUTE,
    occurrence=st.integers(min_value=0, max_value=7),
    action=st.sampled_from(["drop", "garble", "empty", "duplicate-value"]),
    seed=st.integers(min_value=0, max_value=3),
)
def test_stream_finds_what_the_tree_finds_after_random_damage(
    attribute: bytes, occurrence: int, action: str, seed: int
) -> None:
    data = build_sample(8, KOMMUNE, seed=seed)
    marker = b" " + attribute + b'="'
    positions = [i for i in range(len(data)) if data.startswith(marker, i)]
    if positions:
        at = positions[occurrence % len(positions)]
        end = data.index(b'"', at + len(marker))
        value = data[at + len(marker) : end]
        if action == "drop":
            data = data[:at] + data[end + 1 :]
        elif action == "garble":
            data = data[: at + len(marker)] + b"x" + value[::-1] + data[end:]
        elif action == "empty":
            data = data[: at + len(marker)] + data[end:]
        else:
            other = positions[(occurrence + 1) % len(positions)]
            other_end = data.index(b'"', other + len(marker))
            copied = data[other + len(marker) : other_end]
            data = data[: at + len(marker)] + copied + data[end:]
    ctx = fault_context(KOMMUNE)
    _assert_same(validate_melding(data, ctx), data, ctx)


def test_history_keys_stream_as_the_tree_reads_them() -> None:
    for fault in ("IPL-REF-UNKNOWN", "IPL-BRUKERNR-CHANGED", "IPL-LOPENR-GAP", "two-events"):
        data = build_sample(5, KOMMUNE, [fault], seed=2)
        tree = history_keys(etree.fromstring(data))
        assert stream_history_keys(data) == tree
        assert stream_history_keys(io.BytesIO(data)) == tree
        assert stream_history_keys(_element(data)) == tree


def test_history_keys_stream_forgets_each_notification_once_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key pass over a file keeps no tree: when it ends, the Melding holds at most the
    last Notifikasjon (cleared). Before, it compared with iterparse's `root`, which lxml sets
    only at the end, so every notification stayed (480 MB for 100 000)."""
    from app.core import xmlparse

    seen: list[etree.iterparse] = []
    real = xmlparse.iterparse

    def keeping(*args: object, **kwargs: object) -> etree.iterparse:
        events = real(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(events)
        return events

    monkeypatch.setattr(xmlparse, "iterparse", keeping)
    data = build_sample(200, KOMMUNE, [], seed=3)
    keys = stream_history_keys(io.BytesIO(data))
    assert keys == history_keys(etree.fromstring(data))
    (events,) = seen
    melding = events.root
    notifications = melding.findall(f"{{{melding.nsmap[None]}}}Notifikasjon")
    assert len(notifications) <= 1
    assert all(len(n) == 0 and not n.attrib for n in notifications)


# The largest real IPLOS file has 100 000 notifications: that size runs in the second tier
# (`make test-all`); `make test` runs the same test on a message of many stream chunks.
SIZES = [pytest.param(5_000, id="5000"), pytest.param(100_000, id="100000", marks=pytest.mark.slow)]


@pytest.mark.parametrize("size", SIZES)
def test_stream_finds_what_the_tree_finds_on_many_notifications(size: int) -> None:
    rng = random.Random(11)
    data = build_sample(size, KOMMUNE, seed=13)
    # damage a few rows across the message: a schema error, a bad fid, a dropped event date
    for marker, bad in (
        (b'hendelseDato="2018-01-0', b'hendelseDato="2018-13-0'),
        (b'bydel="', b'bydel="x'),
        (b'statusNotifikasjon="N"', b'statusNotifikasjon="Q"'),
    ):
        for _ in range(5):
            at = data.find(marker, rng.randrange(len(data) - 1000))
            if at >= 0:
                data = data[:at] + bad + data[at + len(marker) :]
    ctx = fault_context(KOMMUNE)
    tree = validate_melding(data, ctx)
    streamed = stream_only(data, ctx)
    assert streamed is not None
    assert len(streamed.notifications) == size
    assert streamed.findings
    assert streamed == tree


def _msghead(melding: bytes) -> bytes:
    from datetime import UTC, datetime

    from app.dev.sample import wrap_in_msghead

    return wrap_in_msghead(melding, 8000001, 131725, "m-1", datetime(2018, 2, 1, tzinfo=UTC))


def _tree_in_msghead(head: bytes, ctx: object) -> ContentResult:
    from app.msghead.parse import read_msghead

    content = read_msghead(head, huge=True).msghead.content  # type: ignore[union-attr]
    assert content is not None
    return validate_melding(content, ctx)  # type: ignore[arg-type]


@pytest.mark.parametrize("fault", [f for f in FAULTS if f != "IPL-NOT-XML"])  # MsgHead parses it
def test_stream_inside_msghead_finds_what_the_tree_finds(fault: str) -> None:
    head = _msghead(build_sample(4, KOMMUNE, [fault], seed=5))
    ctx = fault_context(KOMMUNE, [fault])
    tree = _tree_in_msghead(head, ctx)
    streamed = stream_only(head, ctx, in_msghead=True)
    if fault in HANDED_OVER:
        assert streamed is None
    else:
        assert streamed == tree
    assert validate_msghead_content(head, ctx) == tree
    assert validate_msghead_content(io.BytesIO(head), ctx) == tree


def test_msghead_without_content_has_no_content_result() -> None:
    head = _msghead(build_sample(2, KOMMUNE, seed=5))
    start = head.index(b"<Melding")
    end = head.index(b"</Melding>") + len(b"</Melding>")
    empty = head[:start] + head[end:]
    assert validate_msghead_content(empty, fault_context(KOMMUNE)) is None


@pytest.mark.parametrize("size", SIZES)
def test_stream_inside_msghead_reads_many_notifications_without_the_tree(size: int) -> None:
    head = _msghead(build_sample(size, KOMMUNE, seed=17))
    ctx = fault_context(KOMMUNE)
    streamed = stream_only(io.BytesIO(head), ctx, in_msghead=True)
    assert streamed is not None
    assert len(streamed.notifications) == size
    assert streamed == _tree_in_msghead(head, ctx)
