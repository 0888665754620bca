"""Service episodes, the register's own view: per environment, municipality, brukerNr and
tjenesteID, the start, the end, the temporary stops (MidlertidigStoppFra/Til paired by
`midlertidigStoppID`) and the provider changes, each with the notification that set it.

An episode is a function of the *set* of stored notifications, never of the order they
came in: which notifications are in force is decided by `in_force` (an M correction replaces
its original, a C annulment removes it and its corrections, of several corrections the one
with the highest løpenummer wins), the same `hendelseGUID` counts once, and a stored melding
recomputes every episode whose notifications it could change (`update_episodes`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

import anyio
from sqlalchemy import Table, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import utcnow
from app.platform.db import batches, chunks, is_postgres, one_of, write_tuples
from app.register.models import Episode, Hendelse, Melding, Notifikasjon

START, STOP_FRA, STOP_TIL = "TjenesteStart", "MidlertidigStoppFra", "MidlertidigStoppTil"
PROVIDER, END = "TjenesteutforerEndret", "TjenesteSlutt"
# the schema's order of the events within a notification: the order of a day's events
_KIND_ORDER = {START: 0, STOP_TIL: 1, STOP_FRA: 2, PROVIDER: 3, END: 4}

Key = tuple[str, str]  # (brukerNr, tjenesteID) within one environment and municipality


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationFacts:
    """What decides whether a notification is in force."""

    guid: str
    status: str
    ref: str | None
    lopenr: int | None
    tid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFacts:
    notification: NotificationFacts
    kind: str
    position: int
    tjeneste_type: str | None
    tjeneste_org_nr: str | None
    hendelse_dato: date | None
    hendelse_guid: str | None
    midlertidig_stopp_id: str | None
    fid_hmac: str | None
    # its tjenesteID ("" for none): with the brukerNr the episode's key (`OwnEvents`)
    tjeneste_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EpisodeFacts:
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


def _precedence(n: NotificationFacts) -> tuple[int, str, str]:
    # which of several corrections of one original wins: the EPJ's numbering, then the
    # time it was made, then the GUID (only for a total order, whatever the arrival)
    return (n.lopenr if n.lopenr is not None else -1, n.tid, n.guid)


def in_force(
    notifications: Iterable[NotificationFacts], corrections: Iterable[NotificationFacts]
) -> set[str]:
    """The GUIDs of `notifications` in force, given every stored correction (M/C) of the
    originals they are or refer to (`corrections`: its status and `ref` matter)."""
    by_original: dict[str, list[NotificationFacts]] = defaultdict(list)
    for c in corrections:
        if c.status in ("M", "C") and c.ref:
            by_original[c.ref].append(c)
    out: set[str] = set()
    for n in notifications:
        if n.status == "N":
            if not by_original.get(n.guid):
                out.add(n.guid)
        elif n.status == "M":
            group = by_original.get(n.ref or "", []) if n.ref else []
            if not group:
                out.add(n.guid)  # a correction of an original KPR does not have
            elif not any(c.status == "C" for c in group) and max(group, key=_precedence) == n:
                out.add(n.guid)
    return out


def episode_of(key: Key, events: Sequence[EventFacts], force: set[str]) -> EpisodeFacts | None:
    """The episode of one key from its stored events; None when nothing is in force."""
    seen: dict[str, EventFacts] = {}
    kept: list[EventFacts] = []
    ordered = sorted(
        (e for e in events if e.notification.guid in force),
        key=lambda e: (*_precedence(e.notification), e.position),
    )
    for e in ordered:
        if e.hendelse_guid:
            if e.hendelse_guid in seen:
                continue  # the same event sent again under another notification counts once
            seen[e.hendelse_guid] = e
        kept.append(e)
    if not kept:
        return None
    kept.sort(key=_in_time)
    starts = [e for e in kept if e.kind == START]
    ends = [e for e in kept if e.kind == END]
    changes = [e for e in kept if e.kind == PROVIDER]
    first_start = starts[0] if starts else None
    last_end = ends[-1] if ends else None
    provider = changes[-1] if changes else first_start
    typed = first_start or kept[-1]
    return EpisodeFacts(
        bruker_nr=key[0],
        tjeneste_id=key[1],
        fid_hmac=kept[-1].fid_hmac,
        tjeneste_type=typed.tjeneste_type,
        start_dato=first_start.hendelse_dato if first_start else None,
        start_notifikasjon_guid=first_start.notification.guid if first_start else None,
        slutt_dato=last_end.hendelse_dato if last_end else None,
        slutt_notifikasjon_guid=last_end.notification.guid if last_end else None,
        tjeneste_org_nr=provider.tjeneste_org_nr if provider else None,
        midlertidige_stopp=_stops(kept),
        utforer_endringer=[
            {
                "hendelse_dato": _iso(e.hendelse_dato),
                "tjeneste_org_nr": e.tjeneste_org_nr,
                "notifikasjon_guid": e.notification.guid,
            }
            for e in changes
        ],
    )


def _in_time(e: EventFacts) -> tuple[date, int, tuple[int, str, str], int]:
    return (
        e.hendelse_dato or date.min,
        _KIND_ORDER.get(e.kind, 9),
        _precedence(e.notification),
        e.position,
    )


def _stops(kept: Sequence[EventFacts]) -> list[dict[str, Any]]:
    """Temporary stops paired by midlertidigStoppID (a Fra without its Til is a stop still
    going on; a Til without its Fra is kept too: the register sees what was sent)."""
    stops: dict[str, dict[str, Any]] = {}
    for e in kept:
        if e.kind not in (STOP_FRA, STOP_TIL):
            continue
        stop_id = e.midlertidig_stopp_id or ""
        stop = stops.setdefault(
            stop_id,
            {
                "midlertidig_stopp_id": e.midlertidig_stopp_id,
                "fra_dato": None,
                "fra_notifikasjon_guid": None,
                "til_dato": None,
                "til_notifikasjon_guid": None,
            },
        )
        side = "fra" if e.kind == STOP_FRA else "til"
        if stop[f"{side}_notifikasjon_guid"] is None or side == "til":
            stop[f"{side}_dato"] = _iso(e.hendelse_dato)
            stop[f"{side}_notifikasjon_guid"] = e.notification.guid
    return sorted(
        stops.values(),
        key=lambda s: (s["fra_dato"] or s["til_dato"] or "", s["midlertidig_stopp_id"] or ""),
    )


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


# --- the database side -------------------------------------------------------------------


_EVENT_COLUMNS = (
    Hendelse.bruker_nr,
    Hendelse.tjeneste_id,
    Hendelse.hendelse_type,
    Hendelse.position,
    Hendelse.tjeneste_type,
    Hendelse.tjeneste_org_nr,
    Hendelse.hendelse_dato_tolket,
    Hendelse.hendelse_guid_tolket,
    Hendelse.midlertidig_stopp_id,
    Hendelse.fid_hmac,
    Notifikasjon.notifikasjon_guid_tolket,
    Notifikasjon.status_notifikasjon,
    Notifikasjon.notifikasjon_ref_tolket,
    Notifikasjon.notifikasjon_lope_nr_tolket,
    Notifikasjon.notifikasjon_tid,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnEvents:
    """A melding's notifications and events as just stored (app/register/store.py), so its
    episodes need not read them back: a 100 000-notification message would read 100 000
    rows it has in memory."""

    guids: frozenset[str]
    refs: frozenset[str]
    # per brukerNr its events' facts, each keyed by (brukerNr, its tjeneste_id): no key
    # tuple per event (100 000 events held two tuples each, some 15 MB, until the episodes)
    by_bruker: dict[str, list[EventFacts]]


async def update_episodes(
    session: AsyncSession, melding_id: int, own: OwnEvents | None = None
) -> int:
    """Recompute, in the melding's transaction, every episode it can change: all episodes of
    the persons (brukerNr) its events name, and of those named by the events of every
    notification its corrections refer to, of the other corrections of those originals, and
    of the corrections stored earlier that refer to its notifications. Per person, not per
    (brukerNr, tjenesteID): the index (environment, kommune_nr, bruker_nr, ...) then finds
    the rows, where a row-value IN over both columns made SQLite scan the municipality.
    Returns the number of persons recomputed. Empties `own.by_bruker` as it goes (100 000
    persons' facts are let go batch by batch)."""
    melding = await session.get(Melding, melding_id)
    if melding is None:
        return 0
    where = (melding.environment, melding.kommune_nr)
    affected = await _affected(session, melding_id, where, own)
    for batch in batches(sorted(affected.brukere)):
        await _recompute(session, where, batch, _Own(melding_id, own), affected)
    return len(affected.brukere)


@dataclass(frozen=True, slots=True)
class _Own:
    melding_id: int
    events: OwnEvents | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Affected:
    brukere: set[str]  # the persons whose episodes are recomputed
    # whose stored rows must be read: those with rows before this melding and those the
    # corrections touch (None: everyone's). A person new to the municipality is computed
    # from the melding's rows in memory: a 100 000-person first load reads nothing back.
    to_read: set[str] | None
    # every stored correction (M/C) of the melding's notifications, or of the originals and
    # siblings of its own corrections
    corrections: list[NotificationFacts]


def _scope(where: tuple[str, str]) -> list[Any]:
    return [Notifikasjon.environment == where[0], Notifikasjon.kommune_nr == where[1]]


_FACTS = (
    Notifikasjon.notifikasjon_guid_tolket,
    Notifikasjon.status_notifikasjon,
    Notifikasjon.notifikasjon_ref_tolket,
    Notifikasjon.notifikasjon_lope_nr_tolket,
    Notifikasjon.notifikasjon_tid,
    Notifikasjon.id,
)


async def _affected(
    session: AsyncSession, melding_id: int, where: tuple[str, str], own: OwnEvents | None
) -> _Affected:
    in_memory = own is not None
    if own is None:
        own = await _read_own(session, melding_id)
    pg = await is_postgres(session)
    related: dict[int, NotificationFacts] = {}
    conditions = [
        # its corrections' originals and their other corrections
        *(
            or_(
                one_of(Notifikasjon.notifikasjon_guid_tolket, chunk, pg),
                one_of(Notifikasjon.notifikasjon_ref_tolket, chunk, pg),
            )
            for chunk in chunks(own.refs)
        ),
        # corrections stored before of its notifications
        *(one_of(Notifikasjon.notifikasjon_ref_tolket, chunk, pg) for chunk in chunks(own.guids)),
    ]
    for condition in conditions:
        found = await session.execute(select(*_FACTS).where(*_scope(where), condition))
        for g, st, ref, nr, tid, i in found.all():
            related[i] = NotificationFacts(
                guid=g, status=st or "", ref=ref, lopenr=nr, tid=tid or ""
            )
    touched: set[str] = set()
    for chunk in chunks(frozenset(related)):
        found_names = await session.scalars(
            select(Hendelse.bruker_nr).where(one_of(Hendelse.notifikasjon_id, chunk, pg))
        )
        touched.update(b or "" for b in found_names)
    brukere = {b or "" for b in own.by_bruker} | touched
    to_read = (
        (touched | await _with_earlier_rows(session, melding_id, where)) if in_memory else None
    )
    corrections = [n for n in related.values() if n.status in ("M", "C")]
    return _Affected(brukere=brukere, to_read=to_read, corrections=corrections)


async def _with_earlier_rows(
    session: AsyncSession, melding_id: int, where: tuple[str, str]
) -> set[str]:
    """The melding's persons who have rows from earlier meldinger (one semi-join)."""
    named = (
        select(Hendelse.bruker_nr)
        .join(Notifikasjon, Notifikasjon.id == Hendelse.notifikasjon_id)
        .where(Notifikasjon.melding_id == melding_id)
    )
    found = await session.scalars(
        select(Hendelse.bruker_nr)
        .join(Notifikasjon, Notifikasjon.id == Hendelse.notifikasjon_id)
        .where(
            Hendelse.environment == where[0],
            Hendelse.kommune_nr == where[1],
            Notifikasjon.melding_id != melding_id,
            Hendelse.bruker_nr.in_(named),
        )
        .distinct()
    )
    return {b or "" for b in found}


async def _read_own(session: AsyncSession, melding_id: int) -> OwnEvents:
    """What `OwnEvents` holds, read back (a melding stored earlier: `register backfill`)."""
    own = (
        await session.execute(
            select(
                Notifikasjon.notifikasjon_guid_tolket, Notifikasjon.notifikasjon_ref_tolket
            ).where(Notifikasjon.melding_id == melding_id)
        )
    ).all()
    brukere = await session.scalars(
        select(Hendelse.bruker_nr)
        .join(Notifikasjon, Notifikasjon.id == Hendelse.notifikasjon_id)
        .where(Notifikasjon.melding_id == melding_id)
        .distinct()
    )
    return OwnEvents(
        guids=frozenset(g for g, _ in own),
        refs=frozenset(r for _, r in own if r),
        by_bruker={b or "": [] for b in brukere},
    )


def _add_rows(
    rows: Sequence[Any],  # Rows of `_EVENT_COLUMNS` and more than Row's typing spells out
    events: dict[Key, list[EventFacts]],
    notifications: dict[str, NotificationFacts],
) -> None:
    """The stored events read back (`_EVENT_COLUMNS`) into `events` per (bruker, tjeneste)
    and their notifications into `notifications`."""
    for r in rows:
        m = r._mapping  # past the ten columns Row's typing spells out
        n = NotificationFacts(
            guid=m[Notifikasjon.notifikasjon_guid_tolket],
            status=m[Notifikasjon.status_notifikasjon] or "",
            ref=m[Notifikasjon.notifikasjon_ref_tolket],
            lopenr=m[Notifikasjon.notifikasjon_lope_nr_tolket],
            tid=m[Notifikasjon.notifikasjon_tid] or "",
        )
        notifications[n.guid] = n
        events[(r[0] or "", r[1] or "")].append(
            EventFacts(
                notification=n,
                kind=r[2],
                position=r[3],
                tjeneste_type=r[4],
                tjeneste_org_nr=r[5],
                hendelse_dato=r[6],
                hendelse_guid=r[7],
                midlertidig_stopp_id=r[8],
                fid_hmac=r[9],
                tjeneste_id=r[1] or "",
            )
        )


async def _recompute(
    session: AsyncSession,
    where: tuple[str, str],
    brukere: list[str],
    own: _Own,
    affected: _Affected,
) -> None:
    environment, kommune_nr = where
    pg = await is_postgres(session)
    read = brukere if affected.to_read is None else [b for b in brukere if b in affected.to_read]
    query = (
        select(*_EVENT_COLUMNS)
        .join(Notifikasjon, Notifikasjon.id == Hendelse.notifikasjon_id)
        .where(
            Hendelse.environment == environment,
            Hendelse.kommune_nr == kommune_nr,
            one_of(Hendelse.bruker_nr, read, pg),
        )
    )
    events: dict[Key, list[EventFacts]] = defaultdict(list)
    notifications: dict[str, NotificationFacts] = {}
    if own.events is not None:
        # the melding's own rows are in memory: read only the others
        query = query.where(Notifikasjon.melding_id != own.melding_id)
        for bruker_nr in brukere:
            # a person is in one batch: its facts are let go once this batch has them
            for fact in own.events.by_bruker.pop(bruker_nr, ()):
                events[(bruker_nr, fact.tjeneste_id)].append(fact)
                notifications[fact.notification.guid] = fact.notification
    rows = (await session.execute(query)).all() if read else []
    # who may have an episode stored already: everyone when the melding's rows were read
    # back, else those with earlier rows (an episode exists only where rows back it). A new
    # 100 000-person message deletes nothing: each DELETE ... = ANY(1 000 names) scanned the
    # episodes written so far on PostgreSQL (planned while the table was empty): minutes.
    stored_before = set(brukere) if own.events is None else {r[0] or "" for r in rows}
    _add_rows(rows, events, notifications)
    stored = [notifications[r._mapping[Notifikasjon.notifikasjon_guid_tolket]] for r in rows]
    corrections = affected.corrections + await _corrections(session, where, stored)
    episodes = await anyio.to_thread.run_sync(_episodes, events, notifications, corrections)
    table = cast(Table, Episode.__table__)
    if stored_before:
        await session.execute(
            delete(table).where(
                table.c.environment == environment,
                table.c.kommune_nr == kommune_nr,
                one_of(table.c.bruker_nr, sorted(stored_before), pg),
            )
        )
    if episodes:
        now = utcnow()
        await write_tuples(
            session,
            table,
            _COLUMNS,
            ((environment, kommune_nr, *_values(e), now) for e in episodes),
            as_stored=_JSON_LISTS,
        )


async def _corrections(
    session: AsyncSession, where: tuple[str, str], notifications: Iterable[NotificationFacts]
) -> list[NotificationFacts]:
    """Every stored correction (M/C) of the originals the notifications are or refer to."""
    originals = frozenset(n.guid if n.status == "N" else n.ref or "" for n in notifications)
    out: list[NotificationFacts] = []
    pg = await is_postgres(session)
    for chunk in chunks(originals - {""}):
        found = await session.execute(
            select(
                Notifikasjon.notifikasjon_guid_tolket,
                Notifikasjon.status_notifikasjon,
                Notifikasjon.notifikasjon_ref_tolket,
                Notifikasjon.notifikasjon_lope_nr_tolket,
                Notifikasjon.notifikasjon_tid,
            ).where(*_scope(where), one_of(Notifikasjon.notifikasjon_ref_tolket, chunk, pg))
        )
        out.extend(
            NotificationFacts(guid=g, status=s or "", ref=r, lopenr=n, tid=t or "")
            for g, s, r, n, t in found.all()
        )
    return out


def _episodes(
    events: dict[Key, list[EventFacts]],
    notifications: dict[str, NotificationFacts],
    corrections: list[NotificationFacts],
) -> list[EpisodeFacts]:
    force = in_force(notifications.values(), corrections)
    out = []
    for key in sorted(events):
        episode = episode_of(key, events[key], force)
        if episode is not None:
            out.append(episode)
    return out


_COLUMNS = (
    "environment",
    "kommune_nr",
    "bruker_nr",
    "tjeneste_id",
    "fid_hmac",
    "tjeneste_type",
    "start_dato",
    "start_notifikasjon_guid",
    "slutt_dato",
    "slutt_notifikasjon_guid",
    "tjeneste_org_nr",
    "midlertidige_stopp",
    "utforer_endringer",
    "updated_at",
)


def _values(e: EpisodeFacts) -> tuple[Any, ...]:
    """An episode's values in `_COLUMNS` order, between its place and `updated_at`."""
    return (
        e.bruker_nr,
        e.tjeneste_id,
        e.fid_hmac,
        e.tjeneste_type,
        e.start_dato,
        e.start_notifikasjon_guid,
        e.slutt_dato,
        e.slutt_notifikasjon_guid,
        e.tjeneste_org_nr,
        _json(e.midlertidige_stopp),
        _json(e.utforer_endringer),
    )


_JSON_LISTS = frozenset({"midlertidige_stopp", "utforer_endringer"})


def _json(value: list[dict[str, Any]]) -> str:
    """A JSON column's text as Core writes it (json.dumps); most lists are empty, and
    100 000 episodes spent a second serialising them one by one."""
    return json.dumps(value) if value else "[]"
