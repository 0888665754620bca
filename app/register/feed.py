"""All SQL of the register's feed (docs/register-feed.md): pages of accepted notifications in
commit order, and the loader's confirmed position per environment.

A position is (feed_seq, notifikasjon id): `feed_seq` is given to a melding at the very end of
its transaction under the environment's locked counter row (`store.assign_feed_seq`), so a
melding with a higher number is never visible before one with a lower number; all of a
melding's notifications become visible at once. Paging strictly after the last position read
therefore never skips a row, however long a large message held its transaction.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, Text, and_, bindparam, func, or_, select, true, update
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.models import Base
from app.platform.db import IN_CHUNK, chunks, fetch, fetch_on, is_postgres, one_of
from app.register.models import Episode, Hendelse, Melding, Notifikasjon, RegisterFeed


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


MELDING, NOTIFIKASJON = _table(Melding), _table(Notifikasjon)
HENDELSE, EPISODE, FEED = _table(Hendelse), _table(Episode), _table(RegisterFeed)


@dataclass(frozen=True, slots=True, order=True)
class FeedPosition:
    """A place in an environment's feed: after every notification of the meldinger before
    `seq`, and after those of melding `seq` up to `notifikasjon_id`."""

    seq: int
    notifikasjon_id: int


START = FeedPosition(0, 0)
LAST_ID = 2**63 - 1  # past every notification of a melding


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedState:
    environment: str
    last_seq: int  # the last sequence number given (committed)
    confirmed: FeedPosition
    confirmed_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Backlog:
    """What the loader has not confirmed yet."""

    notifications: int


class FeedPositionError(ValueError):
    """A confirmation the feed refuses; `state` is the position kept."""

    def __init__(self, message: str, state: FeedState) -> None:
        super().__init__(message)
        self.state = state


class MovesBackwards(FeedPositionError):
    pass


class BeyondFeed(FeedPositionError):
    pass


# --- the page -------------------------------------------------------------------------------


EpisodeKey = tuple[str, str, str, str]  # environment, kommune_nr, bruker_nr, tjeneste_id
# an event as PostgreSQL wrote its JSON (`_rendered_events`), with its fid still sealed: the
# JSON text and the sealed token in it (None: no fid)
RenderedEvent = tuple[str, str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedPage:
    """A page's rows by column name, each read once: the notifications in feed order with
    their melding's `feed_seq`; the meldinger, the events (by notification id, in position
    order, `fid` still sealed) and the current episodes they refer to; and per notification
    the (brukerNr, tjenesteID) keys its events name, in their order, once each. An item is
    a notification with its melding, its events and the episodes of its keys; one whose
    melding is gone (retention, since the page's first query) is no item. On PostgreSQL the
    events come as `rendered` (their JSON built by the database) and `events` is empty."""

    notifications: list[tuple[dict[str, Any], int]]
    meldinger: dict[int, dict[str, Any]]
    events: dict[int, list[dict[str, Any]]]
    keys: dict[int, list[EpisodeKey]]
    episodes: dict[EpisodeKey, dict[str, Any]]
    rows_read: int  # notifications the keyset query returned (`limit`: there may be more)
    last_read: FeedPosition | None  # the last of them (an item unless retention took it)
    rendered: dict[int, list[RenderedEvent]] = field(default_factory=dict)


EMPTY = FeedPage(
    notifications=[], meldinger={}, events={}, keys={}, episodes={}, rows_read=0, last_read=None
)


async def read_page(
    session: AsyncSession, environment: str, after: FeedPosition, limit: int
) -> FeedPage:
    """Up to `limit` notifications of `environment` after `after`, in feed order: one keyset
    query over melding (uq_melding_environment_feed_seq) and its notifications
    (ix_notifikasjon_melding_id), then the page's meldinger and events by IN-chunks of ids,
    and the episodes of the keys the events name."""
    rows = await fetch(session, _keyset(environment, after, limit))
    if not rows:
        return EMPTY
    # plain tuples into dicts by position: 5 000 rows through RowMapping cost tens of ms
    names = NOTIFIKASJON.c.keys()
    postgres = await is_postgres(session)
    ids = frozenset(r[0] for r in rows)  # the notification's id is its first column
    async with _second_connection(session, postgres) as other:
        # the events' JSON built by PostgreSQL on a second connection (the other core)
        # while this one reads the meldinger and episodes and Python makes the rows' dicts
        rendering = None if other is None else asyncio.create_task(_rendered_events(other, ids))
        try:
            await asyncio.sleep(0)  # the other statement is sent before this one's work
            pairs = [(dict(zip(names, r[:-1], strict=False)), r[-1]) for r in rows]
            # a page's notifications come from few meldinger: each is read once
            meldinger = await _meldinger(
                session, frozenset(p[0]["melding_id"] for p in pairs), postgres
            )
            events, keys, episodes, rendered = await _events_and_episodes(
                session, environment, ids, rendering
            )
        finally:
            if rendering is not None and not rendering.done():
                rendering.cancel()  # this request failed or was cancelled: stop the other
                await asyncio.gather(rendering, return_exceptions=True)
    last_notification, last_seq = pairs[-1]
    return FeedPage(
        notifications=pairs,
        meldinger=meldinger,
        events=events,
        keys=keys,
        episodes=episodes,
        rows_read=len(rows),
        last_read=FeedPosition(last_seq, last_notification["id"]),
        rendered=rendered,
    )


def _keyset(environment: str, after: FeedPosition, limit: int) -> Select[Any]:
    m, n = MELDING, NOTIFIKASJON
    return (
        select(*n.c, m.c.feed_seq)
        .select_from(m.join(n, n.c.melding_id == m.c.id))
        .where(
            m.c.environment == environment,
            m.c.feed_seq >= after.seq,  # the index's range starts here; NULL never matches
            or_(m.c.feed_seq > after.seq, n.c.id > after.notifikasjon_id),
        )
        .order_by(m.c.feed_seq, n.c.id)
        .limit(limit)
    )


_Rendering = asyncio.Task[tuple[dict[int, list[RenderedEvent]], dict[int, list[EpisodeKey]]]]


async def _events_and_episodes(
    session: AsyncSession,
    environment: str,
    ids: frozenset[int],
    rendering: _Rendering | None,
) -> tuple[
    dict[int, list[dict[str, Any]]],
    dict[int, list[EpisodeKey]],
    dict[EpisodeKey, dict[str, Any]],
    dict[int, list[RenderedEvent]],
]:
    """The events (as rows, or as `rendering` gives them) with the keys they name, and
    the episodes of those keys."""
    if rendering is None:
        postgres = await is_postgres(session)
        events, keys = await _events(session, ids, postgres)
        named = {k for own in keys.values() for k in own}
        return events, keys, await _episodes(session, environment, named, postgres), {}
    episodes = await _episodes_of_notifications(session, environment, ids)
    rendered, keys = await rendering
    return {}, keys, episodes, rendered


# Pages that may hold a second connection at once: the pool (10 + 10) must never be taken
# by pages each waiting for their second; beyond this a page reads on its one connection.
SECOND_CONNECTIONS = 2
_seconds_in_use = 0


@asynccontextmanager
async def _second_connection(
    session: AsyncSession, postgres: bool
) -> AsyncIterator[AsyncConnection | None]:
    """A connection of the session's engine beside the session's own, on PostgreSQL and
    while fewer than `SECOND_CONNECTIONS` pages hold one; otherwise None."""
    global _seconds_in_use
    bind = session.bind
    if not postgres or _seconds_in_use >= SECOND_CONNECTIONS or not isinstance(bind, AsyncEngine):
        yield None
        return
    _seconds_in_use += 1
    try:
        async with bind.connect() as other:
            yield other
    finally:
        _seconds_in_use -= 1


def _key(row: dict[str, Any]) -> EpisodeKey:
    return _key_of(row["environment"], row["kommune_nr"], row["bruker_nr"], row["tjeneste_id"])


def _key_of(
    environment: str, kommune_nr: str, bruker_nr: str | None, tjeneste_id: str | None
) -> EpisodeKey:
    # as episodes.py keys them: a missing brukerNr or tjenesteID is ""
    return (environment, kommune_nr, bruker_nr or "", tjeneste_id or "")


def _name(named: list[EpisodeKey], key: EpisodeKey) -> None:
    """`key` added to a notification's keys, once (a notification has an event or two)."""
    if key not in named:
        named.append(key)


async def _meldinger(
    session: AsyncSession, ids: frozenset[int], postgres: bool
) -> dict[int, dict[str, Any]]:
    m = MELDING
    names = m.c.keys()
    out: dict[int, dict[str, Any]] = {}
    for chunk in chunks(ids):
        for r in await fetch(session, select(m).where(one_of(m.c.id, chunk, postgres))):
            melding: dict[str, Any] = dict(zip(names, r, strict=True))
            out[melding["id"]] = melding
    return out


async def _events(
    session: AsyncSession, ids: frozenset[int], postgres: bool
) -> tuple[dict[int, list[dict[str, Any]]], dict[int, list[EpisodeKey]]]:
    """Per notification, its events in position order, and the keys they name."""
    h = HENDELSE
    names = h.c.keys()
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    keys: dict[int, list[EpisodeKey]] = defaultdict(list)
    for chunk in chunks(ids):
        query = (
            select(h)
            .where(one_of(h.c.notifikasjon_id, chunk, postgres))
            .order_by(h.c.notifikasjon_id, h.c.position)
        )
        for r in await fetch(session, query):
            event: dict[str, Any] = dict(zip(names, r, strict=False))  # the columns of `h`
            notification = event["notifikasjon_id"]
            out[notification].append(event)
            _name(keys[notification], _key(event))
    return out, keys


async def _rendered_events(
    connection: AsyncConnection, ids: frozenset[int]
) -> tuple[dict[int, list[RenderedEvent]], dict[int, list[EpisodeKey]]]:
    """Per notification, its events' JSON (`row_to_json` of the event's columns in the
    table's order, so the same text as `to_json` of its dict: PostgreSQL and pydantic write
    JSON alike for these types, as tests/integration/test_register_feed_json_pg.py checks)
    in position order, and the keys they name. Its own statement, so its own snapshot, as
    every statement of a page under READ COMMITTED: an event of a committed notification
    changes only by retention, which the page's meldinger already show."""
    h = HENDELSE
    out: dict[int, list[RenderedEvent]] = defaultdict(list)
    keys: dict[int, list[EpisodeKey]] = defaultdict(list)
    for chunk in chunks(ids):
        row = select(*h.c).where(one_of(h.c.notifikasjon_id, chunk, True)).subquery("e")
        query = select(
            row.c.notifikasjon_id,
            row.c.fid,
            row.c.environment,
            row.c.kommune_nr,
            row.c.bruker_nr,
            row.c.tjeneste_id,
            cast_(func.row_to_json(row.table_valued()), Text),
        ).order_by(row.c.notifikasjon_id, row.c.position)
        for (
            notification,
            fid,
            environment,
            kommune_nr,
            bruker_nr,
            tjeneste_id,
            text,
        ) in await fetch_on(connection, query):
            out[notification].append((text, fid))
            _name(keys[notification], _key_of(environment, kommune_nr, bruker_nr, tjeneste_id))
    return out, keys


async def _episodes_of_notifications(
    session: AsyncSession, environment: str, ids: frozenset[int]
) -> dict[EpisodeKey, dict[str, Any]]:
    """The current episodes of the keys the events of notifications `ids` name, the keys
    taken by the database itself (PostgreSQL: a lateral join on the episode table's unique
    index per key), so the events need not be read first."""
    h, e = HENDELSE, EPISODE
    out: dict[EpisodeKey, dict[str, Any]] = {}
    lists = _JsonLists()
    for chunk in chunks(ids):
        named = (
            select(
                h.c.kommune_nr,
                func.coalesce(h.c.bruker_nr, "").label("bruker_nr"),
                func.coalesce(h.c.tjeneste_id, "").label("tjeneste_id"),
            )
            .where(one_of(h.c.notifikasjon_id, chunk, True), h.c.environment == environment)
            .distinct()
            .subquery("k")
        )
        current = (
            select(*_EPISODE_COLUMNS)
            .where(
                e.c.environment == environment,
                e.c.kommune_nr == named.c.kommune_nr,
                e.c.bruker_nr == named.c.bruker_nr,
                e.c.tjeneste_id == named.c.tjeneste_id,
            )
            .lateral("e")
        )
        for r in await fetch(session, select(current).select_from(named).join(current, true())):
            episode = lists.episode(r)
            out[_key(episode)] = episode
    return out


async def _episodes(
    session: AsyncSession, environment: str, keys: set[EpisodeKey], postgres: bool
) -> dict[EpisodeKey, dict[str, Any]]:
    """The current episodes of `keys`, each read once through the episode table's unique
    index (environment, kommune_nr, bruker_nr, tjeneste_id). PostgreSQL joins the keys as
    arrays (`unnest`); a join from the page's events instead was planned as a hash join over
    every episode (270 ms at 500 000). SQLite takes one municipality at a time, its brukerNr
    in a list (a row-value IN made it scan the municipality)."""
    out: dict[EpisodeKey, dict[str, Any]] = {}
    ordered = sorted(keys)
    lists = _JsonLists()
    for start in range(0, len(ordered), IN_CHUNK):
        chunk = ordered[start : start + IN_CHUNK]
        for query in _episode_queries(environment, chunk, postgres):
            for r in await fetch(session, query):
                episode = lists.episode(r)
                key = _key(episode)
                if key in keys:
                    out[key] = episode
    return out


_JSON_LISTS = ("midlertidige_stopp", "utforer_endringer")
# the episode's columns, its JSON lists as their text (`_JsonLists`)
_EPISODE_COLUMNS = [cast_(c, Text) if c.name in _JSON_LISTS else c for c in EPISODE.c]
_EPISODE_NAMES = EPISODE.c.keys()


class _JsonLists:
    """The episodes' JSON lists decoded once per distinct text: most are `[]`, and 5 000
    decodings cost a page some 25 ms. Equal texts share one decoded list; the page only
    serialises them."""

    def __init__(self) -> None:
        self._seen: dict[str, Any] = {}

    def read(self, value: str) -> Any:
        found = self._seen.get(value)
        if found is None:
            found = self._seen[value] = json.loads(value)
        return found

    def episode(self, row: Sequence[Any]) -> dict[str, Any]:
        """A row of `_EPISODE_COLUMNS` by column name, its JSON lists decoded."""
        episode: dict[str, Any] = dict(zip(_EPISODE_NAMES, row, strict=True))
        for name in _JSON_LISTS:
            episode[name] = self.read(episode[name])
        return episode


def _episode_queries(environment: str, keys: list[EpisodeKey], postgres: bool) -> list[Select[Any]]:
    e = EPISODE
    if postgres:
        wanted = (
            func.unnest(*(_text_array([k[i] for k in keys]) for i in (1, 2, 3)))
            .table_valued("kommune_nr", "bruker_nr", "tjeneste_id")
            .render_derived()
        )
        return [
            select(*_EPISODE_COLUMNS).join(
                wanted,
                and_(
                    e.c.environment == environment,
                    e.c.kommune_nr == wanted.c.kommune_nr,
                    e.c.bruker_nr == wanted.c.bruker_nr,
                    e.c.tjeneste_id == wanted.c.tjeneste_id,
                ),
            )
        ]
    by_kommune: dict[str, set[str]] = defaultdict(set)
    for _, kommune_nr, bruker_nr, _ in keys:
        by_kommune[kommune_nr].add(bruker_nr)
    return [
        select(*_EPISODE_COLUMNS).where(
            e.c.environment == environment,
            e.c.kommune_nr == kommune_nr,
            e.c.bruker_nr.in_(sorted(brukere)),
        )
        for kommune_nr, brukere in by_kommune.items()
    ]


def _text_array(values: list[str]) -> Any:
    return bindparam(None, values, type_=ARRAY(Text))


def page_end(state: FeedState, after: FeedPosition, page: FeedPage, limit: int) -> FeedPosition:
    """Where the next page starts: after the last notification read, and when the page is
    not full, past every melding numbered when `state` was read (before the page), so a
    melding without notifications at the end of the feed (an identical resend) is passed too
    and the loader can confirm it. Safe because numbers are given in commit order: every
    melding up to `state.last_seq` was visible to the page's query, and it returned all it
    found."""
    end = max(after, page.last_read) if page.last_read is not None else after
    if page.rows_read < limit and state.last_seq > 0:
        end = max(end, FeedPosition(state.last_seq, LAST_ID))
    return end


# --- the loader's position --------------------------------------------------------------------


async def feed_state(session: AsyncSession, environment: str) -> FeedState:
    """The environment's counter and confirmed position (all zero before its first melding)."""
    row = (await session.execute(select(FEED).where(FEED.c.environment == environment))).first()
    if row is None:
        return FeedState(environment=environment, last_seq=0, confirmed=START, confirmed_at=None)
    return _state(environment, row._mapping)


def _state(environment: str, row: Any) -> FeedState:
    return FeedState(
        environment=environment,
        last_seq=row["last_seq"],
        confirmed=FeedPosition(row["confirmed_seq"], row["confirmed_notifikasjon_id"]),
        confirmed_at=row["confirmed_at"],
    )


def is_beyond(state: FeedState, position: FeedPosition) -> bool:
    """Whether a position lies past every melding numbered so far: paging or confirming
    from there would skip the meldinger still to come."""
    return position.seq > state.last_seq


async def confirm(
    session: AsyncSession, environment: str, position: FeedPosition, now: datetime
) -> FeedState:
    """Keep `position` as what the loader has taken; the caller commits. One conditional
    UPDATE decides against concurrent confirmations and the intake's counter (which
    locks the same row): it moves only forwards (or stays) and never past the last
    sequence number given. Raises `MovesBackwards` or `BeyondFeed` with the kept state."""
    state = await _move(session, environment, position, now)
    if state is None:
        state = await feed_state(session, environment)
        if is_beyond(state, position):
            raise BeyondFeed(
                f"the cursor is beyond the feed: its melding {position.seq} is after the last "
                f"one numbered in {environment} ({state.last_seq})",
                state,
            )
        if position < state.confirmed:
            raise MovesBackwards(
                f"the cursor is before the confirmed position of {environment}: a "
                "confirmation never moves backwards",
                state,
            )
        # no row yet (nothing stored in the environment): the start is confirmed as it is
        await _ensure_row(session, environment)
        state = await _move(session, environment, position, now)
        assert state is not None  # the row is there now, and the checks above passed
    return state


async def _move(
    session: AsyncSession, environment: str, position: FeedPosition, now: datetime
) -> FeedState | None:
    f = FEED
    stmt = (
        update(f)
        .where(
            f.c.environment == environment,
            f.c.last_seq >= position.seq,
            or_(
                f.c.confirmed_seq < position.seq,
                (f.c.confirmed_seq == position.seq)
                & (f.c.confirmed_notifikasjon_id <= position.notifikasjon_id),
            ),
        )
        .values(
            confirmed_seq=position.seq,
            confirmed_notifikasjon_id=position.notifikasjon_id,
            confirmed_at=now,
        )
        .returning(*f.c)
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else _state(environment, row._mapping)


async def _ensure_row(session: AsyncSession, environment: str) -> None:
    dialect: Any = postgresql if await is_postgres(session) else sqlite
    await session.execute(
        dialect.insert(FEED)
        .values(environment=environment, last_seq=0, confirmed_seq=0, confirmed_notifikasjon_id=0)
        .on_conflict_do_nothing(index_elements=["environment"])
    )


async def backlog(session: AsyncSession, environment: str, after: FeedPosition) -> Backlog:
    """The notifications after `after` (the confirmed position)."""
    m, n = MELDING, NOTIFIKASJON
    row = (
        await session.execute(
            select(func.count(n.c.id))
            .select_from(m.join(n, n.c.melding_id == m.c.id))
            .where(
                m.c.environment == environment,
                m.c.feed_seq >= after.seq,
                or_(m.c.feed_seq > after.seq, n.c.id > after.notifikasjon_id),
            )
        )
    ).one()
    return Backlog(notifications=int(row[0]))
