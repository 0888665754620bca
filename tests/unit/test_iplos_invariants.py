"""What must not change when the content checks are made faster: the stored content digest
(compared with digests stored by earlier messages), the løpenummer ranges, the history keys
read from a MsgHead stream, and the person-id check, each against a plain reference."""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Iterable
from datetime import UTC, date, datetime
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from app.content.iplos.stream import msghead_history_keys
from app.content.iplos.validate import (
    BRUKER,
    NOTIFIKASJON,
    _read_row,
    history_keys,
)
from app.content.model import Ranges, add_to_ranges, normalize_guid
from app.dev.sample import build_sample, wrap_in_msghead
from app.identifiers import (
    CheckRule,
    IdKind,
    IdProblem,
    PersonId,
    _century,
    check_person_id,
    synthetic_person_id,
)
from tests.unit.test_iplos_stream import FAULTS, KOMMUNE

_GUID_ATTRS = {
    "notifikasjonGUID",
    "notifikasjonForrigeGUID",
    "notifikasjonRef",
    "hendelseGUID",
    "pasientGUID",
}

# Names, namespaces, GUIDs in braces and upper case, non-ASCII values, a comment, a PI and text.
ODD_NOTIFICATION = (
    '<Notifikasjon xmlns="http://www.npr.no/xmlstds/56_0_0_ipl" xmlns:x="urn:x" '
    'statusNotifikasjon="N" notifikasjonGUID=" {ABCDEF01-2345-6789-ABCD-EF0123456789} " '
    'notifikasjonLopeNr="7" x:extra="æøå" '
    'notifikasjonForrigeGUID="00000000-0000-0000-0000-000000000000">\n'
    '  <!-- a comment --><TjenesteStart tjenesteType="18" hendelseDato="2018-01-01" '
    'hendelseGUID="{0741C7A8-7CE4-4C82-9807-2E8C35BF992D}"><Bruker brukerNr="B1" '
    'fid="30875025305" typeID="1" pasientGUID="C9E9C616-612E-4696-A6CE-CC1B78E51061"/>'
    '</TjenesteStart><?pi x?><TjenesteSlutt tjenesteType="18"/>text</Notifikasjon>'
).encode()


def _reference_digest(notification: etree._Element) -> str:
    """The digest as first defined: one update per element and per sorted attribute."""
    h = hashlib.sha256()
    for el in notification.iter():
        if not isinstance(el.tag, str):
            continue
        h.update(b"<" + el.tag.encode())
        for name, value in sorted((str(k), str(v)) for k, v in el.attrib.items()):
            if name in _GUID_ATTRS:
                value = normalize_guid(value)
            h.update(b"\x00" + name.encode() + b"=" + value.encode())
    return h.hexdigest()


def content_digest(notification: etree._Element) -> str:
    """The digest as the rows compute it while they read the notification."""
    return _read_row(1, notification, KOMMUNE).digest


def test_content_digest_is_the_stored_one() -> None:
    # stored digests are compared with new ones: these values must never change
    assert content_digest(etree.fromstring(ODD_NOTIFICATION)) == (
        "2d6462b7de80b35c8fcf666d6dc9756396f9b051168b1dc8d59727fc3198576b"
    )
    root = etree.fromstring(build_sample(3, KOMMUNE, ["two-events"], seed=4))
    assert [content_digest(n) for n in root.iter(NOTIFIKASJON)] == [
        "071baf82b51e32659f46c41f16b014e8ace6efeb291af387a8abc0da1a454656",
        "de5e05fde3b9d521058e02a5162eab3a947690d5ce3898214c56cbbfd2afc97e",
        "e51763e5155568b177301b992fd3c49cc33688e7f0ee6c4483fd0ae746be6315",
    ]


@pytest.mark.parametrize("fault", [f for f in FAULTS if f != "IPL-NOT-XML"])
def test_content_digest_agrees_with_the_reference_on_every_fault(fault: str) -> None:
    root = etree.fromstring(build_sample(4, KOMMUNE, [fault], seed=9))
    for n in root.iter(NOTIFIKASJON):
        assert content_digest(n) == _reference_digest(n)


_ATTR_NAMES = st.sampled_from(
    ["notifikasjonGUID", "hendelseGUID", "pasientGUID", "fid", "a", "b", "ø", "{urn:x}a"]
)
_VALUES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=12,
)


_TAGS = st.sampled_from(
    ["{http://www.npr.no/xmlstds/56_0_0_ipl}TjenesteStart", BRUKER, "{urn:y}E", "F"]
)


@given(
    st.dictionaries(_ATTR_NAMES, _VALUES, max_size=5),
    st.lists(
        st.tuples(st.integers(0, 10), _TAGS, st.dictionaries(_ATTR_NAMES, _VALUES, max_size=5)),
        max_size=8,
    ),
)
def test_content_digest_agrees_with_the_reference_on_any_tree(
    top: dict[str, str], below: list[tuple[int, str, dict[str, str]]]
) -> None:
    root = etree.Element(NOTIFIKASJON, top)
    placed = [root]
    for parent, tag, attrs in below:  # each under any element placed before it
        placed.append(etree.SubElement(placed[parent % len(placed)], tag, attrs))
    assert content_digest(root) == _reference_digest(root)
    # the rows compute it while reading the notification
    assert _read_row(1, root, KOMMUNE).digest == _reference_digest(root)


def test_rows_compute_the_content_digest() -> None:
    odd = etree.fromstring(ODD_NOTIFICATION)
    assert _read_row(1, odd, KOMMUNE).digest == content_digest(odd)
    for fault in FAULTS:
        if fault == "IPL-NOT-XML":
            continue
        root = etree.fromstring(build_sample(3, KOMMUNE, [fault], seed=9))
        for i, n in enumerate(root.iter(NOTIFIKASJON), start=1):
            assert _read_row(i, n, KOMMUNE).digest == _reference_digest(n)


def _reference_ranges(ranges: Ranges, numbers: Iterable[int]) -> Ranges:
    """The covered numbers, one by one, cut into runs of consecutive numbers."""
    covered = set(numbers).union(*(range(lo, hi + 1) for lo, hi in ranges))
    runs: list[tuple[int, int]] = []
    for n in sorted(covered):
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return tuple(runs)


_SMALL = st.integers(min_value=-5, max_value=60)


@given(
    st.lists(st.tuples(_SMALL, st.integers(min_value=0, max_value=8)), max_size=6),
    st.lists(_SMALL, max_size=40),
)
def test_add_to_ranges_agrees_with_the_reference(
    starts_and_lengths: list[tuple[int, int]], numbers: list[int]
) -> None:
    ranges = [(lo, lo + length) for lo, length in starts_and_lengths]
    for stored in (tuple(ranges), _reference_ranges(tuple(ranges), ())):  # as read, canonical
        assert add_to_ranges(stored, numbers) == _reference_ranges(stored, numbers)
        assert add_to_ranges(stored, iter(numbers)) == _reference_ranges(stored, numbers)


def _msghead(melding: bytes) -> bytes:
    return wrap_in_msghead(melding, 8000001, 131725, "m-1", datetime(2018, 2, 1, tzinfo=UTC))


@pytest.mark.parametrize("fault", [f for f in FAULTS if f != "IPL-NOT-XML"])
def test_history_keys_of_a_msghead_stream_are_the_trees(fault: str) -> None:
    from app.msghead.parse import read_msghead

    head = _msghead(build_sample(5, KOMMUNE, [fault], seed=2))
    content = read_msghead(head, huge=True).msghead.content  # type: ignore[union-attr]
    assert content is not None
    assert msghead_history_keys(io.BytesIO(head)) == history_keys(content)


def test_history_keys_of_a_msghead_stream_read_nested_notifications() -> None:
    from app.msghead.parse import read_msghead

    melding = build_sample(3, KOMMUNE, seed=2)
    first = melding[melding.index(b"<Notifikasjon ") : melding.index(b"</Notifikasjon>") + 15]
    nested = first.replace(b'notifikasjonLopeNr="1"', b'notifikasjonLopeNr="90"').replace(
        b'brukerNr="', b'brukerNr="X'
    )
    # a Notifikasjon inside another and inside a Kommune: invalid, yet its keys are read
    damaged = melding.replace(
        b"</TjenesteStart></Notifikasjon>", b"</TjenesteStart>" + nested + b"</Notifikasjon>", 1
    ).replace(b"/>\n</Melding>", b">" + nested + b"</Kommune>\n</Melding>", 1)
    head = _msghead(damaged)
    content = read_msghead(head, huge=True).msghead.content  # type: ignore[union-attr]
    assert content is not None
    keys = history_keys(content)
    assert 90 in keys.lopenrs
    assert msghead_history_keys(io.BytesIO(head)) == keys


def test_history_keys_of_a_msghead_without_content_are_unknown() -> None:
    head = _msghead(build_sample(2, KOMMUNE, seed=5))
    start = head.index(b"<Melding")
    end = head.index(b"</Melding>") + len(b"</Melding>")
    assert msghead_history_keys(io.BytesIO(head[:start] + head[end:])) is None
    assert msghead_history_keys(io.BytesIO(head[: len(head) // 2])) is None


_W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def _reference_checks(number: str) -> tuple[int, int]:
    d = [int(c) for c in number]
    k1 = (11 - sum(w * x for w, x in zip(_W1, d, strict=False)) % 11) % 11
    k2 = (11 - sum(w * x for w, x in zip(_W2, d, strict=False)) % 11) % 11
    return k1, k2


@given(st.from_regex(r"[0-9]{11}", fullmatch=True))
def test_person_id_check_digits_agree_with_the_reference(number: str) -> None:
    k1, k2 = _reference_checks(number)
    offset = (int(number[9]) - k1) % 11
    checked = check_person_id(number)
    if isinstance(checked, PersonId):
        assert offset <= 3
        assert k2 == int(number[10])
    for rule_2032, allowed in ((True, 3), (False, 0)):
        result = check_person_id(number, rule_2032=rule_2032)
        if offset > allowed or k2 != int(number[10]):
            assert not isinstance(result, PersonId)


def _reference_latest(yy: int, month: int, day: int, on: date | None) -> int | None:
    """The 2032 rule's century, by trying every year ending in yy from 1800 to 2199."""
    years = sorted((c + yy for c in range(1800, 2200, 100)), reverse=True)
    if on is None:
        allowed = {1900 + yy, 2000 + yy}
    else:  # not after `on`, at most two centuries before on's century
        allowed = {y for y in years if y - yy >= on.year - on.year % 100 - 200}
    fits = []
    for year in years:
        try:
            born = date(year, month, day)
        except ValueError:
            continue
        if year in allowed and (on is None or born <= on):
            fits.append(born)
    if on is None:
        return min(fits).year if fits else None
    return max(fits).year if fits else None


def _reference_person_id(
    number: str, rule_2032: bool, on: date | None = None
) -> PersonId | IdProblem:
    """check_person_id read from the number's text, one field at a time."""
    if len(number) != 11:
        return IdProblem.LENGTH
    if any(c not in "0123456789" for c in number):
        return IdProblem.NOT_DIGITS
    day, month, yy, individual = (int(number[a:b]) for a, b in ((0, 2), (2, 4), (4, 6), (6, 9)))
    kind = IdKind.DNR if day > 40 else IdKind.FNR
    day -= 40 if day > 40 else 0
    synthetic = month > 80
    if synthetic:
        month -= 80
    elif month > 40:
        if kind is IdKind.DNR:
            return IdProblem.DATE
        kind, month = IdKind.HNR, month - 40
    k1, k2 = _reference_checks(number)
    offset = (int(number[9]) - k1) % 11
    year = _century(yy, individual)
    if rule_2032 and offset in (1, 2, 3):  # only the 2032 rule allows it: a new number
        year = _reference_latest(yy, month, day, on)
    elif year is None and kind is IdKind.HNR:
        year = 1900 + yy
    elif year is None and rule_2032 and offset == 0:  # the old table cannot place it
        year = _reference_latest(yy, month, day, on)
    try:
        born = datetime(year, month, day).date() if year is not None else None
    except ValueError:
        born = None
    if born is None:
        return IdProblem.DATE
    if offset > (3 if rule_2032 else 0) or k2 != int(number[10]):
        return IdProblem.CHECKSUM
    rule = CheckRule.CLASSIC if offset == 0 else CheckRule.RULE_2032
    return PersonId(number, kind, synthetic, born, rule)


_NUMBERS = st.one_of(
    st.from_regex(r"[0-9]{11}", fullmatch=True),
    st.from_regex(r"[0-7][0-9][0-5][0-9]{8}", fullmatch=True),  # real dates are likelier
    st.builds(
        lambda seed, kind, rule: synthetic_person_id(Random(seed), kind=kind, rule_2032=rule),
        st.integers(0, 10_000),
        st.sampled_from([IdKind.FNR, IdKind.DNR]),
        st.booleans(),
    ),
    st.text(alphabet="0123456789 x", max_size=12),
)


@given(_NUMBERS, st.booleans(), st.none() | st.dates(date(1900, 1, 1), date(2199, 12, 31)))
def test_check_person_id_agrees_with_the_reference(
    number: str, rule_2032: bool, on: date | None
) -> None:
    assert check_person_id(number, rule_2032=rule_2032, on=on) == _reference_person_id(
        number, rule_2032, on
    )


def test_ranges_of_a_long_message_are_one_range() -> None:
    numbers = list(itertools.chain(range(1, 50_001), range(50_003, 100_001)))
    assert add_to_ranges(((100_002, 100_010),), reversed(numbers)) == (
        (1, 50_001 - 1),
        (50_003, 100_000),
        (100_002, 100_010),
    )


def test_streaming_leaves_the_garbage_collector_as_it_found_it() -> None:
    import gc

    from app.content.iplos.stream import stream_only
    from app.dev.sample import fault_context

    good = build_sample(3, KOMMUNE, seed=1)
    ctx = fault_context(KOMMUNE)
    assert gc.isenabled()
    for data in (good, good[: len(good) // 2]):  # the second hands over to the tree path
        stream_only(data, ctx)
        assert gc.isenabled()
    gc.disable()
    try:
        assert stream_only(good, ctx) is not None
        assert not gc.isenabled()
    finally:
        gc.enable()
