"""All SQL of the register's feed (docs/register-feed.md): pages of accepted notifications in
commit order, and the loader's confirmed position per environment.

A position is (feed_seq, notifikasjon id): `feed_seq` is given to a melding at the very end of
its transaction under the environment's locked counter row (`store.assign_feed_seq`), so a
melding with a higher number is never visible before one with a lower number; all of a
melding's notifications become visible at once. Paging strictly after the last position read
therefore never skips a row, however long a large message held its transaction.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, Text, and_, bindparam, func, or_, select, update
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Base
from app.platform.db import IN_CHUNK, chunks, fetch, is_postgres, one_of
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


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedPage:
    """A page's rows by column name, each read once: the notifications in feed order with
    their melding's `feed_seq`; the meldinger, the events (by notification id, in position
    order, `fid` still sealed) and the current episodes they refer to; and per notification
    the (brukerNr, tjenesteID) keys its events name, in their order, once each. An item is
    a notification with its melding, its events and the episodes of its keys; one whose
    melding is gone (retention, since the page's first query) is no item."""

    notifications: list[tuple[dict[str, Any], int]]
    meldinger: dict[int, dict[str, Any]]
    events: dict[int, list[dict[str, Any]]]
    keys: dict[int, list[EpisodeKey]]
    episodes: dict[EpisodeKey, dict[str, Any]]
    rows_read: int  # notifications the keyset query returned (`limit`: there may be more)
    last_read: FeedPosition | None  # the last of them (an item unless retention took it)


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
    m, n = MELDING, NOTIFIKASJON
    query = (
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
    rows = await fetch(session, query)
    if not rows:
        return EMPTY
    # plain tuples into dicts by position: 5 000 rows through RowMapping cost tens of ms
    names = n.c.keys()
    pairs = [(dict(zip(names, r[:-1], strict=False)), r[-1]) for r in rows]
    postgres = await is_postgres(session)
    # a page's notifications come from few meldinger: each is read once
    meldinger = await _meldinger(session, frozenset(p[0]["melding_id"] for p in pairs), postgres)
    events, keys = await _events(session, frozenset(p[0]["id"] for p in pairs), postgres)
    named = {k for own in keys.values() for k in own}
    last_notification, last_seq = pairs[-1]
    return FeedPage(
        notifications=pairs,
        meldinger=meldinger,
        events=events,
        keys=keys,
        episodes=await _episodes(session, environment, named, postgres),
        rows_read=len(rows),
        last_read=FeedPosition(last_seq, last_notification["id"]),
    )


def _key(event: dict[str, Any]) -> EpisodeKey:
    # as episodes.py keys them: a missing brukerNr or tjenesteID is ""
    return (
        event["environment"],
        event["kommune_nr"],
        event["bruker_nr"] or "",
        event["tjeneste_id"] or "",
    )


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
            key = _key(event)
            if key not in keys[notification]:  # a notification has an event or two
                keys[notification].append(key)
    return out, keys


async def _episodes(
    session: AsyncSession, environment: str, keys: set[EpisodeKey], postgres: bool
) -> dict[EpisodeKey, dict[str, Any]]:
    """The current episodes of `keys`, each read once through the episode table's unique
    index (environment, kommune_nr, bruker_nr, tjeneste_id). PostgreSQL joins the keys as
    arrays (`unnest`); a join from the page's events instead was planned as a hash join over
    every episode (270 ms at 500 000). SQLite takes one municipality at a time, its brukerNr
    in a list (a row-value IN made it scan the municipality)."""
    names = EPISODE.c.keys()
    out: dict[EpisodeKey, dict[str, Any]] = {}
    ordered = sorted(keys)
    lists = _JsonLists()
    for start in range(0, len(ordered), IN_CHUNK):
        chunk = ordered[start : start + IN_CHUNK]
        for query in _episode_queries(environment, chunk, postgres):
            for r in await fetch(session, query):
                episode: dict[str, Any] = dict(zip(names, r, strict=True))
                for name in _JSON_LISTS:
                    episode[name] = lists.read(episode[name])
                key = _key(episode)
                if key in keys:
                    out[key] = episode
    return out


_JSON_LISTS = ("midlertidige_stopp", "utforer_endringer")
# the episode's columns, its JSON lists as their text (`_JsonLists`)
_EPISODE_COLUMNS = [cast_(c, Text) if c.name in _JSON_LISTS else c for c in EPISODE.c]


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
