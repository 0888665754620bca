"""Writing the register store: an accepted message's Melding, contacts, municipalities,
notifications and events, every attribute as sent, in the intake's one transaction.

Rows are written set-based and streamed (COPY on PostgreSQL, executemany elsewhere:
`app.platform.db.write_tuples`), as positional rows made in one pass over each
notification's packed values; each event's fid is sealed (AES-GCM) and hashed (HMAC) as its
row is made. The feed's sequence number is given last
(`assign_feed_seq`), just before the commit, so the counter's row lock is held only for
the commit itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.content.model import (
    BRUKER_FIELDS,
    EVENT_FIELDS,
    NOTIFIKASJON_FIELDS,
    ContentResult,
    Notification,
    guid_key,
    parse_xs_date,
)
from app.models import Base
from app.platform.db import is_postgres, new_ids, write_rows, write_tuples
from app.register.episodes import EventFacts, NotificationFacts, OwnEvents
from app.register.models import (
    Hendelse,
    Kontaktperson,
    Melding,
    MeldingKommune,
    Notifikasjon,
    RegisterFeed,
)
from app.register.protect import Protector

# Melding's attributes the ipl module uses, by column (the `moduleConstraint I` ones,
# uttakDato, lopenr, ..., are not kept: IPL-XSD-IGNORED says they were sent)
MELDING_ATTRIBUTES = {
    "versjon": "versjon",
    "meldingstype": "meldingstype",
    "leverandor": "leverandor",
    "navn_epj": "navnEPJ",
    "versjon_epj": "versjonEPJ",
    "versjon_ut": "versjonUt",
    "lokalident": "lokalident",
}
KONTAKTPERSON_ATTRIBUTES = {
    "kont_person": "kontPerson",
    "meld_telefon": "meldTelefon",
    "meld_epost1": "meldEpost1",
    "meld_epost2": "meldEpost2",
    "type_kontaktperson": "typeKontaktperson",
}
NOTIFIKASJON_ATTRIBUTES = {
    "status_notifikasjon": "statusNotifikasjon",
    "notifikasjon_tid": "notifikasjonTid",
    "notifikasjon_guid": "notifikasjonGUID",
    "notifikasjon_forrige_guid": "notifikasjonForrigeGUID",
    "notifikasjon_lope_nr": "notifikasjonLopeNr",
    "notifikasjon_ref": "notifikasjonRef",
}
HENDELSE_ATTRIBUTES = {
    "tjeneste_type": "tjenesteType",
    "hendelse_reg_tid": "hendelseRegTid",
    "tjeneste_org_nr": "tjenesteOrgNr",
    "hendelse_dato": "hendelseDato",
    "tjeneste_id": "tjenesteID",
    "hendelse_guid": "hendelseGUID",
    "midlertidig_stopp_id": "midlertidigStoppID",
}
BRUKER_ATTRIBUTES = {
    "pasient_guid": "pasientGUID",
    "bruker_nr": "brukerNr",
    "fid": "fid",
    "type_id": "typeID",
    "bydel": "bydel",
}


# a melding this large refreshes the planner's statistics of the tables it filled
ANALYZE_AFTER = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class MeldingRecord:
    """An accepted message as the register store keeps it."""

    message_id: int
    environment: str
    received_at: datetime
    apprec_id: str | None
    apprec_status: str | None
    content: ContentResult


def stored_rows(content: ContentResult) -> list[Notification]:
    """The notifications the register keeps: accepted and not an identical resend of one it
    holds (the register keeps the first values)."""
    return [
        n
        for n in content.notifications
        if not n.dropped and not n.already_stored and n.raw is not None
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMelding:
    id: int  # the melding row's
    own: OwnEvents  # its notifications and events, for its episodes


async def store_melding(
    session: AsyncSession, record: MeldingRecord, protector: Protector
) -> StoredMelding:
    """Store an accepted message in the register."""
    content = record.content
    unit = content.kommuner[0] if content.kommuner else ""
    values: dict[str, Any] = {
        "message_id": record.message_id,
        "environment": record.environment,
        "kommune_nr": unit[:4],
        "received_at": record.received_at,
        "apprec_id": record.apprec_id,
        "apprec_status": record.apprec_status,
        **{col: content.melding.get(attr) for col, attr in MELDING_ATTRIBUTES.items()},
    }
    melding = _table(Melding)
    melding_id = int(
        (await session.execute(insert(melding).values(values).returning(melding.c.id))).scalar_one()
    )
    await write_rows(session, _table(Kontaktperson), _contact_rows(melding_id, content))
    await write_rows(
        session,
        _table(MeldingKommune),
        (
            {"melding_id": melding_id, "position": i, "kommune_nr": k}
            for i, k in enumerate(content.kommuner, start=1)
        ),
    )
    rows = stored_rows(content)
    if not rows:
        return StoredMelding(
            id=melding_id, own=OwnEvents(guids=frozenset(), refs=frozenset(), by_bruker={})
        )
    where = (record.environment, unit[:4])
    ids = await new_ids(session, _table(Notifikasjon), len(rows))
    await write_tuples(
        session,
        _table(Notifikasjon),
        NOTIFIKASJON_COLUMNS,
        _notification_rows(melding_id, where, zip(ids, rows, strict=True)),
    )
    by_bruker: dict[str, list[EventFacts]] = defaultdict(list)
    await write_tuples(
        session,
        _table(Hendelse),
        HENDELSE_COLUMNS,
        _event_rows(where, zip(ids, rows, strict=True), protector, by_bruker),
    )
    if len(rows) >= ANALYZE_AFTER and await is_postgres(session):
        # The episodes' reads that follow are planned on these tables' statistics, and a
        # first large load has none: PostgreSQL scanned the municipality's rows once per
        # batch of names (minutes for 100 000). ANALYZE in the transaction counts its own
        # rows; it makes a concurrent large message wait for this commit at this point.
        await session.execute(text("ANALYZE notifikasjon, hendelse"))
    own = OwnEvents(
        guids=frozenset(n.guid[:100] for n in rows),
        refs=frozenset(n.ref[:100] for n in rows if n.ref),
        by_bruker=dict(by_bruker),
    )
    return StoredMelding(id=melding_id, own=own)


def _contact_rows(melding_id: int, content: ContentResult) -> Iterator[dict[str, Any]]:
    for i, attrs in enumerate(content.raw_contacts, start=1):
        read = content.contacts[i - 1].type if i <= len(content.contacts) else None
        yield {
            "melding_id": melding_id,
            "position": i,
            **{col: attrs.get(attr) for col, attr in KONTAKTPERSON_ATTRIBUTES.items()},
            "type_kontaktperson_tolket": read,
        }


# the bulk rows' columns, and where each attribute stands among the packed values as sent
# (app/content/model.py: NOTIFIKASJON_FIELDS, EVENT_FIELDS + BRUKER_FIELDS after the kind)
NOTIFIKASJON_COLUMNS = (
    "id",
    "melding_id",
    "environment",
    "kommune_nr",
    "position",
    *NOTIFIKASJON_ATTRIBUTES,
    "notifikasjon_guid_tolket",
    "notifikasjon_ref_tolket",
    "notifikasjon_lope_nr_tolket",
    "funn",
    "feil",
)
_NOTIFIKASJON_AT = [NOTIFIKASJON_FIELDS.index(a) for a in NOTIFIKASJON_ATTRIBUTES.values()]
HENDELSE_COLUMNS = (
    "notifikasjon_id",
    "environment",
    "kommune_nr",
    "position",
    "hendelse_type",
    *HENDELSE_ATTRIBUTES,
    *BRUKER_ATTRIBUTES,  # "fid": the sealed token
    "fid_hmac",
    "hendelse_dato_tolket",
    "hendelse_guid_tolket",
    "type_id_tolket",
    "tjeneste_type_tolket",
)
_EVENT_NAMES = ("", *EVENT_FIELDS, *BRUKER_FIELDS)  # [0]: the kind
_HENDELSE_AT = [_EVENT_NAMES.index(a) for a in HENDELSE_ATTRIBUTES.values()]
_BRUKER_AT = [_EVENT_NAMES.index(a) for a in BRUKER_ATTRIBUTES.values()]
_FID_AT = _EVENT_NAMES.index("fid")
_BRUKER_NR_AT = _EVENT_NAMES.index("brukerNr")
_TJENESTE_ID_AT = _EVENT_NAMES.index("tjenesteID")
_TJENESTE_TYPE_AT = _EVENT_NAMES.index("tjenesteType")
_TJENESTE_ORG_NR_AT = _EVENT_NAMES.index("tjenesteOrgNr")
_HENDELSE_DATO_AT = _EVENT_NAMES.index("hendelseDato")
_HENDELSE_GUID_AT = _EVENT_NAMES.index("hendelseGUID")
_STOPP_ID_AT = _EVENT_NAMES.index("midlertidigStoppID")
_STATUS_AT = NOTIFIKASJON_FIELDS.index("statusNotifikasjon")
_TID_AT = NOTIFIKASJON_FIELDS.index("notifikasjonTid")


def _notification_rows(
    melding_id: int, where: tuple[str, str], rows: Iterable[tuple[int, Notification]]
) -> Iterator[tuple[Any, ...]]:
    environment, kommune_nr = where
    for row_id, n in rows:
        assert n.raw is not None
        sent = n.raw.head()
        yield (
            row_id,
            melding_id,
            environment,
            kommune_nr,
            n.index,
            *[sent[i] for i in _NOTIFIKASJON_AT],
            n.guid[:100],
            n.ref[:100] if n.ref else None,
            n.lopenr,
            " ".join(n.rules) or None,
            " ".join(n.errors) or None,
        )


def _event_rows(
    where: tuple[str, str],
    rows: Iterable[tuple[int, Notification]],
    protector: Protector,
    by_bruker: dict[str, list[EventFacts]],
) -> Iterator[tuple[Any, ...]]:
    """Each event's row, its fid sealed and hashed (once per fid and notification), and its
    facts added to `by_bruker` as the episodes read them."""
    environment, kommune_nr = where
    seal = protector.sealer()
    # The facts stay in memory until the episodes are written: their values split from the
    # packed strings are new objects per event, though kinds, codes, org numbers and dates
    # repeat: one object per distinct value.
    shared: dict[str, str] = {}
    dates: dict[str, date | None] = {}
    for row_id, n in rows:
        assert n.raw is not None
        head, events = n.raw.values()
        facts = _notification_facts(n, head)
        type_id = n.type_id[:20] or None
        cache: dict[str, tuple[str, str]] = {}
        for position, ev in enumerate(events, start=1):
            token, digest = _protected(cache, ev[_FID_AT], seal, protector)
            dato = _date(dates, ev[_HENDELSE_DATO_AT] or "")
            guid = ev[_HENDELSE_GUID_AT]
            guid_read = guid_key(guid)[:100] if guid else None
            # as read: "08" is code 8 (issue 21)
            tjeneste_type = _shared(shared, _read_type(n, position, ev[_TJENESTE_TYPE_AT]))
            bruker = [ev[i] for i in _BRUKER_AT]
            bruker[_SEALED_AT] = token
            yield (
                row_id,
                environment,
                kommune_nr,
                position,
                ev[0],
                *[ev[i] for i in _HENDELSE_AT],
                *bruker,
                digest,
                dato,
                guid_read,
                type_id,
                tjeneste_type,
            )
            facts_of = EventFacts(
                notification=facts,
                kind=_shared(shared, ev[0]) or "",
                position=position,
                tjeneste_type=tjeneste_type,
                tjeneste_org_nr=_shared(shared, ev[_TJENESTE_ORG_NR_AT]),
                hendelse_dato=dato,
                hendelse_guid=guid_read,
                midlertidig_stopp_id=ev[_STOPP_ID_AT],
                fid_hmac=digest,
                tjeneste_id=ev[_TJENESTE_ID_AT] or "",
            )
            by_bruker[ev[_BRUKER_NR_AT] or ""].append(facts_of)


def _protected(
    cache: dict[str, tuple[str, str]],
    fid: str | None,
    seal: Callable[[str], str],
    protector: Protector,
) -> tuple[str | None, str | None]:
    """The fid sealed and its keyed hash, once per fid in `cache`; (None, None) for none."""
    if fid is None:
        return None, None
    if fid not in cache:
        cache[fid] = (seal(fid), protector.digest(fid))
    return cache[fid]


def _date(seen: dict[str, date | None], sent: str) -> date | None:
    """`sent` read as a date, once per distinct text."""
    if sent in seen:
        return seen[sent]
    found = seen[sent] = parse_xs_date(sent)
    return found


def _shared(seen: dict[str, str], value: str | None) -> str | None:
    """The one object of an equal value seen before (`value` the first time)."""
    return None if value is None else seen.setdefault(value, value)


_SEALED_AT = list(BRUKER_ATTRIBUTES).index("fid")


def _notification_facts(n: Notification, head: list[str | None]) -> NotificationFacts:
    return NotificationFacts(
        guid=n.guid[:100],
        status=head[_STATUS_AT] or "",
        ref=n.ref[:100] if n.ref else None,
        lopenr=n.lopenr,
        tid=head[_TID_AT] or "",
    )


def _read_type(n: Notification, position: int, sent: str | None) -> str | None:
    """The event's tjenesteType as the checks read it (`n.events` and `n.raw.events` are
    the same events in the same order), else as sent."""
    if 0 < position <= len(n.events):
        return n.events[position - 1].tjeneste_type or sent
    return sent


async def assign_feed_seq(session: AsyncSession, environment: str, melding_id: int) -> int:
    """The melding's place in the feed: the environment's counter plus one. The counter's
    row stays locked until the commit, so sequence numbers become visible in order and a
    loader paging by them never skips a melding committed late (docs/register.md)."""
    table = _table(RegisterFeed)
    dialect: Any = postgresql if await is_postgres(session) else sqlite
    stmt = dialect.insert(table).values(
        environment=environment, last_seq=1, confirmed_seq=0, confirmed_notifikasjon_id=0
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["environment"], set_={"last_seq": table.c.last_seq + 1}
    ).returning(table.c.last_seq)
    seq = int((await session.execute(stmt)).scalar_one())
    melding = _table(Melding)
    await session.execute(update(melding).where(melding.c.id == melding_id).values(feed_seq=seq))
    return seq


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)
