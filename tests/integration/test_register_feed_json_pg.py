"""On PostgreSQL a feed page's events are written as JSON by the database (`row_to_json`, on a
second connection beside the page's own: app/register/feed.py `_rendered_events`) and only
their fids opened in Python. The response must be byte for byte what the page built from the
rows as dicts gives (`to_json`, the path SQLite and a page without a second connection take):
the same keys in the same order, and PostgreSQL escaping any text as pydantic does."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.register import page_json
from app.register import feed
from app.register.models import Episode, Hendelse, Melding, Notifikasjon
from app.register.store import assign_feed_seq
from tests.budgets import examples
from tests.integration.seed import add_message
from tests.integration.test_register_feed import Sessions
from tests.protector import PROTECTOR

pytestmark = pytest.mark.databases("postgresql")

ENV = "pilot"
# any text PostgreSQL can hold: no NUL, no lone surrogate; control characters, quotes,
# backslashes, U+2028, DEL and characters beyond the BMP included
TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))
TRICKY = ['"', "\\", "\x01\x1f\x7f", "\b\f\n\r\t", "/", "\u2028\u2029", "å😀", "</script>"]
_numbers = itertools.count(1)


async def _stored(session: AsyncSession, message_id: int, texts: list[str]) -> int:
    """A melding of three notifications: two events (one fid, one without), none, and one
    whose event carries every text column; one episode per key."""
    t = (texts * 12)[:12]
    n = next(_numbers)
    melding = Melding(
        message_id=message_id, environment=ENV, kommune_nr="0301", received_at=datetime.now(UTC)
    )
    session.add(melding)
    await session.flush()
    notifications = []
    for position in (1, 2, 3):
        row = Notifikasjon(
            melding_id=melding.id,
            environment=ENV,
            kommune_nr="0301",
            position=position,
            status_notifikasjon=t[0],
            notifikasjon_guid_tolket=f"g-{n}-{position}",
        )
        session.add(row)
        notifications.append(row)
    await session.flush()
    events = [
        (notifications[0], 1, f"B{n}", PROTECTOR.seal(t[1] or "fid"), t[2]),
        (notifications[0], 2, f"B{n}x", None, t[3]),
        (notifications[2], 1, f"{t[4]}#{n}", PROTECTOR.seal(f"{n:011d}"), t[5]),
    ]
    for notification, position, bruker, fid, text in events:
        session.add(
            Hendelse(
                notifikasjon_id=notification.id,
                environment=ENV,
                kommune_nr="0301",
                position=position,
                hendelse_type="TjenesteStart",
                tjeneste_type=text,
                hendelse_reg_tid=t[6],
                tjeneste_org_nr=t[7],
                hendelse_dato=t[8],
                tjeneste_id="T1",
                hendelse_guid=t[9],
                midlertidig_stopp_id=t[10],
                bruker_nr=bruker,
                fid=fid,
                bydel=t[11],
                hendelse_dato_tolket=date(2018, 2, 3),
            )
        )
        session.add(
            Episode(
                environment=ENV,
                kommune_nr="0301",
                bruker_nr=bruker,
                tjeneste_id="T1",
                tjeneste_type=text,
                start_dato=date(2018, 1, 1),
                midlertidige_stopp=[{"fra": "2018-01-05", "id": text}],
                utforer_endringer=[],
            )
        )
    await session.flush()
    await assign_feed_seq(session, ENV, melding.id)
    return n


async def _page(
    sessions: Sessions, after: feed.FeedPosition, monkeypatch: pytest.MonkeyPatch, *, second: bool
) -> tuple[feed.FeedPage, bytes]:
    with monkeypatch.context() as m:
        if not second:
            m.setattr(feed, "SECOND_CONNECTIONS", 0)
        async with sessions() as s:
            page = await feed.read_page(s, ENV, after, 5000)
    return page, page_json(page, "next", PROTECTOR.open)[0]


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(texts=st.lists(st.one_of(st.sampled_from(TRICKY), TEXT), min_size=1, max_size=12))
async def test_the_events_json_postgresql_writes_is_the_plain_page_byte_for_byte(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch, texts: list[str]
) -> None:
    message_id = (await add_message(sessions)).id
    async with sessions() as s:
        state = await feed.feed_state(s, ENV)
        n = await _stored(s, message_id, texts)
        await s.commit()
    after = feed.FeedPosition(state.last_seq, feed.LAST_ID)  # this example's melding only
    rendered, by_database = await _page(sessions, after, monkeypatch, second=True)
    plain, by_python = await _page(sessions, after, monkeypatch, second=False)
    assert rendered.rendered
    assert not rendered.events
    assert plain.events
    assert not plain.rendered
    assert by_database == by_python
    items: list[dict[str, Any]] = json.loads(by_database)["items"]
    assert [len(i["hendelser"]) for i in items] == [2, 0, 1]
    t = (texts * 12)[:12]
    assert [e["fid"] for i in items for e in i["hendelser"]] == [t[1] or "fid", None, f"{n:011d}"]
    assert items[0]["hendelser"][0]["bydel"] == t[11]


async def test_a_page_holds_no_second_connection_beyond_the_bound(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages beyond `SECOND_CONNECTIONS` at once read on their one connection (the pool is
    never taken by pages each waiting for a second), and answer the same."""
    message_id = (await add_message(sessions)).id
    async with sessions() as s:
        await _stored(s, message_id, ["x"])
        await s.commit()
    monkeypatch.setattr(feed, "SECOND_CONNECTIONS", 1)
    async with sessions() as first, sessions() as second:
        # the first page holds the one second connection while the other is read
        async with feed._second_connection(first, True) as held:
            assert held is not None
            page = await feed.read_page(second, ENV, feed.START, 5000)
            assert page.events
            assert not page.rendered
        after = await feed.read_page(second, ENV, feed.START, 5000)
        assert after.rendered
        assert not after.events
    assert feed._seconds_in_use == 0
    assert page_json(page, None, PROTECTOR.open) == page_json(after, None, PROTECTOR.open)
