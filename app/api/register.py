"""/api/v1/register: the hand-off to KPR's register (docs/register-feed.md). The loader (a
token with role `register`) pages through every accepted notification in commit order, with
its events (fid opened) and the episodes they belong to, and confirms what it has taken.

The feed is the loader's alone: it opens every fid of an environment, which no person
needs to read, so operators get 403 there too (they have the position, the access log and
`kpr-mottak export --with-fid`, which is logged). The position carries no personal data and
is open to operators as well.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import astuple
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from app.api.access import log_access
from app.api.deps import RegisterLoader, RegisterOrOperator
from app.api.messages import Environment
from app.api.paging import decode_position, encode_position, encode_position_bytes
from app.api.problems import PROBLEM_RESPONSES, Problem
from app.http_deps import DbSession, app_state
from app.models import utcnow
from app.register import feed
from app.register.confirmed import oldest_unconfirmed
from app.register.feed import FeedPosition, FeedState

router = APIRouter(prefix="/api/v1/register", tags=["register"], responses=PROBLEM_RESPONSES)

DEFAULT_LIMIT = 1000
MAX_LIMIT = 5000
Cursor = Annotated[str, Field(min_length=1, max_length=200)]


class MeldingOut(BaseModel):
    """The notification's message: table `melding`, every attribute as sent."""

    id: int
    message_id: int = Field(description="KPR's message reference")
    environment: str
    kommune_nr: str = Field(description="the reporting unit (the first Kommune)")
    received_at: datetime
    apprec_id: str | None
    apprec_status: str | None
    feed_seq: int = Field(description="the melding's place in the feed (commit order)")
    versjon: str | None
    meldingstype: str | None
    leverandor: str | None
    navn_epj: str | None
    versjon_epj: str | None
    versjon_ut: str | None
    lokalident: str | None


class HendelseOut(BaseModel):
    """One event (`hendelse_type` = its element name) with its Bruker: table `hendelse`."""

    id: int
    notifikasjon_id: int
    environment: str
    kommune_nr: str
    position: int
    hendelse_type: str
    tjeneste_type: str | None
    hendelse_reg_tid: str | None
    tjeneste_org_nr: str | None
    hendelse_dato: str | None
    tjeneste_id: str | None
    hendelse_guid: str | None
    midlertidig_stopp_id: str | None
    pasient_guid: str | None
    bruker_nr: str | None
    fid: str | None = Field(description="personal data, opened for the loader")
    fid_hmac: str | None = Field(description="keyed hash of fid, for joins")
    type_id: str | None
    bydel: str | None
    hendelse_dato_tolket: date | None
    hendelse_guid_tolket: str | None
    type_id_tolket: str | None
    tjeneste_type_tolket: str | None = Field(description='tjenesteType as read ("08" is 8)')


class EpisodeOut(BaseModel):
    """A service episode as it stands now (table `episode`), for a key the events name."""

    id: int
    environment: str
    kommune_nr: str
    bruker_nr: str
    tjeneste_id: str
    fid_hmac: str | None
    tjeneste_type: str | None
    start_dato: date | None
    start_notifikasjon_guid: str | None
    slutt_dato: date | None
    slutt_notifikasjon_guid: str | None
    tjeneste_org_nr: str | None
    midlertidige_stopp: list[dict[str, Any]]
    utforer_endringer: list[dict[str, Any]]
    updated_at: datetime


class FeedItemOut(BaseModel):
    """An accepted notification: the columns of table `notifikasjon`, its melding, its
    events and their episodes. (environment, kommune_nr, notifikasjon_guid_tolket) is the
    idempotency key: the feed is at-least-once."""

    cursor: str = Field(description="this item's position: confirm it, or page after it")
    id: int
    melding_id: int
    environment: str
    kommune_nr: str
    position: int
    status_notifikasjon: str | None
    notifikasjon_tid: str | None
    notifikasjon_guid: str | None
    notifikasjon_forrige_guid: str | None
    notifikasjon_lope_nr: str | None
    notifikasjon_ref: str | None
    notifikasjon_guid_tolket: str
    notifikasjon_ref_tolket: str | None
    notifikasjon_lope_nr_tolket: int | None
    funn: str | None = Field(description="the rule ids of the row's findings")
    feil: str | None = Field(
        description="the rule ids of the errors the row was kept with: the municipality "
        "must correct it (docs/rules.md)"
    )
    melding: MeldingOut
    hendelser: list[HendelseOut]
    episoder: list[EpisodeOut]


class FeedPage(BaseModel):
    items: list[FeedItemOut]
    next: str | None = Field(
        description="the cursor to page after: the last item's; on a page that is not full, "
        "past every melding numbered when it was read (also those without notifications); "
        "`after` itself when nothing is new (null only before anything is stored)"
    )


class ConfirmIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"environment": "production", "cursor": "WzEyLDM0NV0"}]},
    )

    environment: Environment
    cursor: Cursor


class PositionOut(BaseModel):
    environment: str
    last_seq: int = Field(description="the last feed sequence number given (committed)")
    confirmed_seq: int
    confirmed_notifikasjon_id: int
    confirmed_cursor: str = Field(description="page `after` this to resume")
    confirmed_at: datetime | None
    unconfirmed_notifications: int | None = Field(
        default=None, description="notifications after the confirmed position"
    )
    oldest_unconfirmed_received_at: datetime | None = None


@router.get(
    "/notifications",
    response_model=FeedPage,
    summary="The register feed: accepted notifications in commit order (personal data)",
)
async def get_notifications(
    request: Request,
    session: DbSession,
    who: RegisterLoader,
    environment: Annotated[Environment, Query(description="pilot, test or production")],
    after: Annotated[
        str | None,
        Query(max_length=200, description="a cursor (`next`, or an item's); none: the start"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Response:
    """Up to `limit` notifications after `after`, ordered by (melding.feed_seq,
    notifikasjon.id). Poll with `next` for ever: it never skips a notification committed
    later, however long its message held its transaction."""
    position = _position(after) if after is not None else feed.START
    env = environment.value
    state = await feed.feed_state(session, env)  # read before the page: see feed.page_end
    _refuse_beyond(state, position)
    with paused_gc():
        page = await feed.read_page(session, env, position, limit)
        end = feed.page_end(state, position, page, limit)
        next_cursor = (
            None if end == feed.START and after is None else encode_position(*astuple(end))
        )
        # from plain rows: 5 000 items through model validation cost twice
        content, items = page_json(page, next_cursor, app_state(request).keyring.register.open)
    if items:  # an empty page discloses nothing; a polling loader would log every second
        log_access(
            session,
            request,
            who,
            "register.feed",
            resource=f"{request.url.path}?environment={env}&after={after or ''}"
            f"&until={next_cursor}",
        )
        await session.commit()
    return Response(content, media_type="application/json")


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off while a page is built: its 40 000 short-lived dicts
    set off full collections over the whole process's heap (a page of 5 000 took 320 ms at
    the median instead of 190). Nothing a page builds is cyclic; reference counting frees it,
    and the collector runs again as soon as the page is built."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@router.post(
    "/confirm",
    response_model=PositionOut,
    summary="Confirm what the loader has taken",
    responses={
        409: {
            "model": Problem,
            "description": "The cursor is before the confirmed position",
            "content": {"application/problem+json": {}},
        }
    },
)
async def post_confirm(body: ConfirmIn, session: DbSession, _who: RegisterLoader) -> PositionOut:
    """Keep `cursor` (a `next` or an item's cursor) as the environment's confirmed position:
    retention removes nothing after it. The same cursor again is fine; an earlier one is
    409 (a confirmation never moves backwards), one beyond the feed 422."""
    env = body.environment.value
    try:
        state = await feed.confirm(session, env, _position(body.cursor), utcnow())
    except feed.MovesBackwards as exc:
        raise HTTPException(409, str(exc)) from None
    except feed.BeyondFeed as exc:
        raise HTTPException(422, str(exc)) from None
    await session.commit()
    return _position_out(state)


@router.get("/position", response_model=PositionOut, summary="The loader's confirmed position")
async def get_position(
    session: DbSession,
    _who: RegisterOrOperator,
    environment: Annotated[Environment, Query(description="pilot, test or production")],
) -> PositionOut:
    """The last sequence number given, the confirmed position, and what is not confirmed:
    how many notifications, and when the oldest of them was received."""
    state = await feed.feed_state(session, environment.value)
    backlog = await feed.backlog(session, environment.value, state.confirmed)
    out = _position_out(state)
    out.unconfirmed_notifications = backlog.notifications
    # the same reading of "confirmed" as retention and the metric (app/register/confirmed.py)
    oldest = await oldest_unconfirmed(session, [environment.value])
    out.oldest_unconfirmed_received_at = oldest[environment.value]
    return out


def _position(cursor: str) -> FeedPosition:
    return FeedPosition(*decode_position(cursor))


def _refuse_beyond(state: FeedState, position: FeedPosition) -> None:
    if feed.is_beyond(state, position):
        raise HTTPException(
            422,
            f"after: the cursor is beyond the feed of {state.environment} (melding "
            f"{position.seq}, the last numbered is {state.last_seq}): paging from there would "
            "skip what comes",
        )


def _position_out(state: FeedState) -> PositionOut:
    confirmed = state.confirmed
    return PositionOut(
        environment=state.environment,
        last_seq=state.last_seq,
        confirmed_seq=confirmed.seq,
        confirmed_notifikasjon_id=confirmed.notifikasjon_id,
        confirmed_cursor=encode_position(confirmed.seq, confirmed.notifikasjon_id),
        confirmed_at=state.confirmed_at,
    )


def page_json(
    page: feed.FeedPage, next_cursor: str | None, open_fid: Callable[[str], str]
) -> tuple[bytes, int]:
    """The response's JSON, and its number of items: byte for byte `to_json({"items": [...],
    "next": next_cursor})` of the items as dicts (the notification's columns, its cursor,
    melding, events with fid opened, episodes), spliced from pieces so that what items
    share is serialised once: a melding per page, an episode per page (each stands in
    about two items). A page of 5 000 as one structure cost twice as much."""
    meldinger: dict[int, bytes] = {}
    episodes = _EpisodesJson(page.episodes)
    opened: dict[str, str] = {}  # a person's events share their sealed token
    parts = [b'{"items":[']
    items = 0
    for notification, seq in page.notifications:
        notification_id, melding_id = notification["id"], notification["melding_id"]
        melding = meldinger.get(melding_id)
        if melding is None:
            found = page.meldinger.get(melding_id)
            if found is None:
                continue  # removed by retention (pilot, test) since the page's first query
            melding = meldinger[melding_id] = to_json(found)
        rendered = page.rendered.get(notification_id)
        if rendered is None:
            own = page.events.get(notification_id, [])
            _open_fids(own, opened, open_fid)
            events = to_json(own)
        else:
            events = _events_json(rendered, opened, open_fid)
        parts += (
            b"," if items else b"",
            to_json(notification)[:-1],  # its columns, the object still open
            b',"cursor":"',
            encode_position_bytes(seq, notification_id),  # base64url: nothing to escape
            b'","melding":',
            melding,
            b',"hendelser":',
            events,
            b',"episoder":[',
            episodes.of(page.keys.get(notification_id, ())),
            b"]}",
        )
        items += 1
    parts += (b'],"next":', to_json(next_cursor), b"}")
    return b"".join(parts), items


def _open_fids(
    events: list[dict[str, Any]], opened: dict[str, str], open_fid: Callable[[str], str]
) -> None:
    """Each event's fid opened, in place (the rows are this request's), once per token."""
    for event in events:
        token = event["fid"]
        if token is not None:
            event["fid"] = _opened(token, opened, open_fid)


def _opened(token: str, opened: dict[str, str], open_fid: Callable[[str], str]) -> str:
    """The fid a sealed token holds, opened once per page (a person's events share it)."""
    fid = opened.get(token)
    if fid is None:
        fid = opened[token] = open_fid(token)
    return fid


def _events_json(
    rendered: list[feed.RenderedEvent], opened: dict[str, str], open_fid: Callable[[str], str]
) -> bytes:
    """A notification's events as a JSON array from the JSON PostgreSQL wrote for each, the
    sealed fid replaced by the opened one. `"fid":"TOKEN"` occurs once per event: the key
    is unique, and a quote inside any value is escaped."""
    out = []
    for text, token in rendered:
        data = text.encode()
        if token is not None:
            fid = _opened(token, opened, open_fid)
            data = data.replace(b'"fid":' + to_json(token), b'"fid":' + to_json(fid), 1)
        out.append(data)
    return b"[" + b",".join(out) + b"]"


class _EpisodesJson:
    """The page's episodes, each serialised when an item first names it."""

    def __init__(self, rows: dict[feed.EpisodeKey, dict[str, Any]]) -> None:
        self._rows = rows
        self._json: dict[feed.EpisodeKey, bytes] = {}

    def of(self, keys: Iterable[feed.EpisodeKey]) -> bytes:
        """The episodes of `keys` that have one, as JSON array members."""
        out = []
        for key in keys:
            found = self._json.get(key)
            if found is None and key in self._rows:
                found = self._json[key] = to_json(self._rows[key])
            if found is not None:
                out.append(found)
        return b",".join(out)
