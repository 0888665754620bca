"""The intake reads a spooled MsgHead as a stream (issue 11): the header fields from an
iterparse that drops the content's elements as they end, the content through the format's
streaming check. It finds exactly what the tree path finds, or hands over to it."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from app.content.iplos import RULES
from app.dev.sample import SCENARIOS, build_sample, fault_context, wrap_in_msghead
from app.intake import business as business_step
from app.intake import stages
from app.msghead.model import MsgHeadReading
from app.msghead.parse import read_msghead, read_msghead_stream
from app.security import cms

KOMMUNE = "0301"
KPR_HER = "131725"
GEN = datetime(2018, 2, 1, 12, tzinfo=UTC)


def _head(melding: bytes | None = None, **kwargs: object) -> bytes:
    return wrap_in_msghead(
        melding if melding is not None else build_sample(5, KOMMUNE, seed=3),
        1000,
        int(KPR_HER),
        "msg-1",
        GEN,
        **kwargs,  # type: ignore[arg-type]
    )


def _reading_fields(r: MsgHeadReading) -> tuple[object, ...]:
    findings = tuple((f.rule.id, f.location, f.detail) for f in r.findings)
    h = r.msghead
    if h is None:
        return (findings,)
    return (
        findings,
        h.msg_type,
        h.mig_version,
        h.gen_date_raw,
        h.gen_date,
        h.msg_id,
        h.ack,
        h.conversation_ref,
        h.sender,
        h.receiver,
        h.document_count,
        h.content is None,
        h.content.tag if h.content is not None else None,
        h.signature is None,
    )


HEAD = _head()
SAME = {
    "valid": HEAD,
    "gendate missing": HEAD.replace(b"<GenDate>", b"<GenDateX>").replace(
        b"</GenDate>", b"</GenDateX>"
    ),
    "schema error after the content": HEAD.replace(b"</Content>", b"</Content><Foo/>"),
    "empty content": HEAD[: HEAD.index(b"<Content>") + 9] + HEAD[HEAD.index(b"</Content>") :],
    "other type": _head(msg_type="KPR_XYZ"),
    "no msghead": build_sample(2, KOMMUNE, seed=1),
}
HANDED_OVER = {
    "xsi attribute in the content": HEAD.replace(
        b"<Notifikasjon ",
        b'<Notifikasjon xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="x" ',
        1,
    ),
    "msghead element in the content": HEAD.replace(
        b"<Notifikasjon ",
        b'<MsgId xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"/><Notifikasjon ',
        1,
    ),
    "not well-formed": HEAD[:-20],
    "doctype": b"<!DOCTYPE MsgHead>" + HEAD.split(b"?>", 1)[1],
}


@pytest.mark.parametrize("name", sorted(SAME))
def test_the_streamed_reading_is_the_tree_reading(name: str) -> None:
    data = SAME[name]
    streamed = read_msghead_stream(io.BytesIO(data))
    if name == "no msghead":
        assert streamed is None  # the tree path words it
        return
    assert streamed is not None
    assert _reading_fields(streamed) == _reading_fields(read_msghead(data, huge=True))


@pytest.mark.parametrize("name", sorted(HANDED_OVER))
def test_the_streamed_reading_hands_over_where_it_could_differ(name: str) -> None:
    assert read_msghead_stream(io.BytesIO(HANDED_OVER[name])) is None


def test_the_content_is_not_kept() -> None:
    streamed = read_msghead_stream(io.BytesIO(_head(build_sample(200, KOMMUNE, seed=2))))
    assert streamed is not None
    assert streamed.msghead is not None
    assert streamed.msghead.content is not None
    assert len(streamed.msghead.content) == 0


def _spool(data: bytes) -> io.BufferedRandom:
    spool = cms.new_spool()
    spool.write(data)
    spool.seek(0)
    return spool  # type: ignore[return-value]


def _business(content: bytes | io.BufferedRandom, faults: list[str]) -> stages.Business:
    ctx = fault_context(KOMMUNE, faults)
    expect = stages.HeadExpectations(
        now=ctx.now, our_her_ids=frozenset({KPR_HER}), skew=timedelta(minutes=5)
    )
    return stages.check_business(content, expect, ctx)


FAULTS = [r.id for r in RULES] + list(SCENARIOS)


@pytest.mark.parametrize("fault", FAULTS)
def test_the_intake_streams_what_the_tree_finds_for_each_fault(fault: str) -> None:
    data = _head(build_sample(3, KOMMUNE, [fault], seed=7))
    tree = _business(data, [fault])
    with _spool(data) as spool:
        streamed = _business(spool, [fault])
    assert streamed.findings == tree.findings
    assert streamed.content == tree.content


@pytest.mark.parametrize("name", sorted({**SAME, **HANDED_OVER}))
def test_the_intake_streams_what_the_tree_finds_for_each_msghead(name: str) -> None:
    data = {**SAME, **HANDED_OVER}[name]
    tree = _business(data, [])
    with _spool(data) as spool:
        streamed = _business(spool, [])
    assert streamed.findings == tree.findings
    assert streamed.content == tree.content


def test_a_spooled_msghead_is_read_as_a_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _head(build_sample(20, KOMMUNE, seed=4))
    with _spool(data) as spool:
        read = _read(spool)
        assert read.source is spool
        assert read.msghead is not None
        assert read.msghead.content is not None
        assert len(read.msghead.content) == 0  # the tree was never built

        def no_tree(*args: object, **kwargs: object) -> None:
            raise AssertionError("the tree path")

        monkeypatch.setattr(business_step, "_tree_head", no_tree)
        business = stages.check_content(read, fault_context(KOMMUNE))
    assert business.content is not None
    assert len(business.content.notifications) == 20


def test_the_freed_heap_can_be_released() -> None:
    stages.release_freed_memory()  # glibc's malloc_trim; a no-op where there is none
    stages.release_freed_memory()


def _read(content: bytes | io.BufferedRandom) -> stages.BusinessHead:
    expect = stages.HeadExpectations(
        now=GEN, our_her_ids=frozenset({KPR_HER}), skew=timedelta(minutes=5)
    )
    return stages.read_business(content, expect)


def _keyed_messages() -> dict[str, bytes]:
    faulty = {f"fault {f}": _head(build_sample(4, KOMMUNE, [f], seed=9)) for f in FAULTS}
    return {**faulty, **SAME, **HANDED_OVER, "many": _head(build_sample(300, KOMMUNE, seed=5))}


KEYED = _keyed_messages()


@pytest.mark.parametrize("name", sorted(KEYED))
def test_the_history_keys_collected_while_reading_msghead_are_the_trees(name: str) -> None:
    data = KEYED[name]
    tree = _read(data)
    with _spool(data) as spool:
        streamed = _read(spool)
    assert streamed.keys == tree.keys
    assert streamed.fmt is tree.fmt


def test_the_history_keys_take_no_pass_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _head(build_sample(50, KOMMUNE, seed=6))
    expected = _read(data).keys
    assert expected.guids

    def no_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("a second pass over the document for the history keys")

    monkeypatch.setattr(business_step, "_streamed_keys", no_pass)
    with _spool(data) as spool:
        assert _read(spool).keys == expected
