"""The register feed's response is assembled from pieces (app/api/register.py `page_json`):
it must be byte for byte the plain `to_json` of the whole page built as dicts, as the feed
answered before (several meldinger, shared and missing episodes, null fids, a melding gone,
strings that JSON escapes)."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, date, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import to_json

from app.api.paging import decode_position, encode_position, encode_position_bytes
from app.api.register import page_json
from app.register.feed import EMPTY, EpisodeKey, FeedPage, FeedPosition

ENV = "production"


def opened(token: str) -> str:
    return f"fid-of-{token}"


def melding(mid: int, text: str = "Leverandør AS") -> dict[str, Any]:
    return {
        "id": mid,
        "message_id": 100 + mid,
        "environment": ENV,
        "kommune_nr": "0301",
        "received_at": datetime(2018, 3, 4, 5, 6, 7, 891000, tzinfo=UTC),
        "apprec_id": None,
        "apprec_status": "1",
        "feed_seq": mid * 10,
        "leverandor": text,
        "lokalident": None,
    }


def notification(nid: int, mid: int, text: str = "N") -> dict[str, Any]:
    return {
        "id": nid,
        "melding_id": mid,
        "environment": ENV,
        "kommune_nr": "0301",
        "position": nid,
        "status_notifikasjon": text,
        "notifikasjon_ref": None,
        "notifikasjon_lope_nr_tolket": nid * 7,
        "feil": None,
    }


def event(
    eid: int, nid: int, bruker: str | None, fid: str | None, text: str = "x"
) -> dict[str, Any]:
    return {
        "id": eid,
        "notifikasjon_id": nid,
        "environment": ENV,
        "kommune_nr": "0301",
        "position": eid,
        "hendelse_type": "TjenesteStart",
        "tjeneste_id": "T1",
        "bruker_nr": bruker,
        "fid": fid,
        "bydel": text,
        "hendelse_dato_tolket": date(2018, 2, 3),
    }


def episode(bruker: str, text: str = "20") -> dict[str, Any]:
    return {
        "id": len(bruker),
        "environment": ENV,
        "kommune_nr": "0301",
        "bruker_nr": bruker,
        "tjeneste_id": "T1",
        "tjeneste_type": text,
        "start_dato": date(2018, 1, 1),
        "slutt_dato": None,
        "midlertidige_stopp": [{"fra": "2018-01-05", "til": None, "id": text}],
        "utforer_endringer": [],
        "updated_at": datetime(2018, 6, 1, tzinfo=UTC),
    }


def key(bruker: str | None) -> EpisodeKey:
    return (ENV, "0301", bruker or "", "T1")


def plain(page: FeedPage, next_cursor: str | None) -> bytes:
    """The page as the feed serialised it before: one `to_json` of every item as a dict."""
    items = []
    for row, seq in page.notifications:
        found = page.meldinger.get(row["melding_id"])
        if found is None:
            continue
        own = [
            {**e, "fid": None if e["fid"] is None else opened(e["fid"])}
            for e in page.events.get(row["id"], [])
        ]
        keys = dict.fromkeys(key(e["bruker_nr"]) for e in own)
        items.append(
            {
                **row,
                "cursor": encode_position(seq, row["id"]),
                "melding": found,
                "hendelser": own,
                "episoder": [page.episodes[k] for k in keys if k in page.episodes],
            }
        )
    return to_json({"items": items, "next": next_cursor})


def page_of(texts: list[str]) -> FeedPage:
    """Three meldinger (one gone), six notifications: with two events of one person, with
    none, with a null fid and brukerNr, sharing a person (and an episode) across meldinger,
    and a key without an episode; `texts` go into strings throughout."""
    t = (texts * 8)[:8] if texts else ["a"] * 8
    notifications = [
        (notification(1, 1, t[0]), 10),
        (notification(2, 1), 10),
        (notification(3, 2, t[1]), 20),  # its melding is gone
        (notification(4, 3), 30),
        (notification(5, 3, t[2]), 30),
        (notification(6, 3), 30),
    ]
    events = {
        1: [event(1, 1, "B1", "k1:AAA", t[3]), event(2, 1, "B1", "k1:AAA")],
        3: [event(3, 3, "B3", "k1:CCC")],
        4: [event(4, 4, None, None, t[4]), event(5, 4, "B2", "k1:BBB")],
        5: [event(6, 5, "B1", "k1:AAA"), event(7, 5, "B9", None, t[5])],
        6: [event(8, 6, "B2", None)],
    }
    return FeedPage(
        notifications=notifications,
        meldinger={1: melding(1, t[6]), 3: melding(3)},
        events=events,
        keys={
            i: list(dict.fromkeys(key(e["bruker_nr"]) for e in own)) for i, own in events.items()
        },
        episodes={key("B1"): episode("B1", t[7]), key("B2"): episode("B2"), key(None): episode("")},
        rows_read=6,
        last_read=FeedPosition(30, 6),
    )


def test_the_assembled_page_is_the_plain_serialisation_byte_for_byte() -> None:
    for texts in (
        [],
        ['quote " and \\ and /', "æøå ÆØÅ", "\x00\x1f\x7f", "\u2028\ud7ff😀", '}],{"id":'],
    ):
        page = page_of(texts)
        expected = plain(copy.deepcopy(page), "WzMwLDZd")
        content, items = page_json(page, "WzMwLDZd", opened)
        assert content == expected
        assert items == 5


def test_an_empty_page_and_a_page_of_gone_meldinger_hold_no_items() -> None:
    assert page_json(EMPTY, None, opened) == (to_json({"items": [], "next": None}), 0)
    assert page_json(EMPTY, "WzEsMl0", opened)[0] == b'{"items":[],"next":"WzEsMl0"}'
    gone = FeedPage(
        notifications=[(notification(1, 9), 1)],
        meldinger={},
        events={},
        keys={},
        episodes={},
        rows_read=1,
        last_read=FeedPosition(1, 1),
    )
    assert page_json(gone, None, opened) == (b'{"items":[],"next":null}', 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=8))
def test_any_text_in_any_field_serialises_as_the_plain_page(texts: list[str]) -> None:
    page = page_of(texts)
    assert page_json(page, None, opened)[0] == plain(copy.deepcopy(page_of(texts)), None)


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
def test_the_cursor_is_the_same_as_before_and_reads_back(seq: int, row_id: int) -> None:
    cursor = encode_position_bytes(seq, row_id).decode("ascii")
    before = base64.urlsafe_b64encode(f"[{seq},{row_id}]".encode()).decode().rstrip("=")
    assert cursor == encode_position(seq, row_id) == before
    assert decode_position(cursor) == (seq, row_id)
