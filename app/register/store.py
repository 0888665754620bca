"""Writing the register store: an accepted message's Melding, contacts, municipalities,
notifications and events, every attribute as sent, in the intake's one transaction.

Rows are written set-based (COPY on PostgreSQL, executemany elsewhere:
`app.platform.db.write_rows`); identifiers are sealed in a worker thread first (100 000
notifications: AES-GCM and HMAC for each fid). The feed's sequence number is given last
(`assign_feed_seq`), just before the commit, so the counter's row lock is held only for
the commit itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import anyio
from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.content.model import ContentResult, Notification, guid_key, parse_xs_date
from app.models import Base
from app.platform.db import is_postgres, write_rows
from app.register.episodes import EventFacts, Key, NotificationFacts, OwnEvents
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
    sealed, own = await anyio.to_thread.run_sync(_seal_all, rows, protector)
    where = (record.environment, unit[:4])
    await write_rows(session, _table(Notifikasjon), _notification_rows(melding_id, where, rows))
    found = await session.execute(
        select(Notifikasjon.position, Notifikasjon.id).where(Notifikasjon.melding_id == melding_id)
    )
    ids = dict(found.all())
    await write_rows(session, _table(Hendelse), _event_rows(ids, where, rows, sealed))
    if len(rows) >= ANALYZE_AFTER and await is_postgres(session):
        # The episodes' reads that follow are planned on these tables' statistics, and a
        # first large load has none: PostgreSQL scanned the municipality's rows once per
        # batch of names (minutes for 100 000). ANALYZE in the transaction counts its own
        # rows; it makes a concurrent large message wait for this commit at this point.
        await session.execute(text("ANALYZE notifikasjon, hendelse"))
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


def _notification_rows(
    melding_id: int, where: tuple[str, str], rows: Sequence[Notification]
) -> Iterator[dict[str, Any]]:
    environment, kommune_nr = where
    for n in rows:
        assert n.raw is not None
        attrs = n.raw.attrs
        yield {
            "melding_id": melding_id,
            "environment": environment,
            "kommune_nr": kommune_nr,
            "position": n.index,
            **{col: attrs.get(attr) for col, attr in NOTIFIKASJON_ATTRIBUTES.items()},
            "notifikasjon_guid_tolket": n.guid[:100],
            "notifikasjon_ref_tolket": n.ref[:100] if n.ref else None,
            "notifikasjon_lope_nr_tolket": n.lopenr,
            "funn": " ".join(n.rules) or None,
            "feil": " ".join(n.errors) or None,
        }


Sealed = list[list[tuple[str | None, str | None]]]  # per notification, per event: token, hmac


def _seal_all(rows: Sequence[Notification], protector: Protector) -> tuple[Sealed, OwnEvents]:
    """Each event's fid sealed and hashed, and the events as the episodes read them."""
    out: Sealed = []
    by_bruker: dict[str, list[tuple[Key, EventFacts]]] = defaultdict(list)
    for n in rows:
        assert n.raw is not None
        facts = NotificationFacts(
            guid=n.guid[:100],
            status=n.raw.attrs.get("statusNotifikasjon") or "",
            ref=n.ref[:100] if n.ref else None,
            lopenr=n.lopenr,
            tid=n.raw.attrs.get("notifikasjonTid") or "",
        )
        per_event: list[tuple[str | None, str | None]] = []
        cache: dict[str, tuple[str | None, str | None]] = {}
        for position, ev in enumerate(n.raw.events, start=1):
            fid = ev.bruker.get("fid")
            if fid is not None and fid not in cache:
                cache[fid] = (protector.seal(fid), protector.digest(fid))
            sealed = cache[fid] if fid is not None else (None, None)
            per_event.append(sealed)
            bruker_nr, attrs = ev.bruker.get("brukerNr") or "", ev.attrs
            guid = attrs.get("hendelseGUID")
            by_bruker[bruker_nr].append(
                (
                    (bruker_nr, attrs.get("tjenesteID") or ""),
                    EventFacts(
                        notification=facts,
                        kind=ev.kind,
                        position=position,
                        # as read: "08" is code 8 (issue 21)
                        tjeneste_type=_read_type(n, position, attrs.get("tjenesteType")),
                        tjeneste_org_nr=attrs.get("tjenesteOrgNr"),
                        hendelse_dato=parse_xs_date(attrs.get("hendelseDato") or ""),
                        hendelse_guid=guid_key(guid)[:100] if guid else None,
                        midlertidig_stopp_id=attrs.get("midlertidigStoppID"),
                        fid_hmac=sealed[1],
                    ),
                )
            )
        out.append(per_event)
    own = OwnEvents(
        guids=frozenset(n.guid[:100] for n in rows),
        refs=frozenset(n.ref[:100] for n in rows if n.ref),
        by_bruker=dict(by_bruker),
    )
    return out, own


def _event_rows(
    ids: Mapping[int, int],
    where: tuple[str, str],
    rows: Sequence[Notification],
    sealed: Sealed,
) -> Iterator[dict[str, Any]]:
    environment, kommune_nr = where
    for n, seals in zip(rows, sealed, strict=True):
        assert n.raw is not None
        for position, (ev, (token, digest)) in enumerate(
            zip(n.raw.events, seals, strict=True), start=1
        ):
            attrs, bruker = ev.attrs, ev.bruker
            guid = attrs.get("hendelseGUID")
            yield {
                "notifikasjon_id": ids[n.index],
                "environment": environment,
                "kommune_nr": kommune_nr,
                "position": position,
                "hendelse_type": ev.kind,
                **{col: attrs.get(attr) for col, attr in HENDELSE_ATTRIBUTES.items()},
                **{col: bruker.get(attr) for col, attr in BRUKER_ATTRIBUTES.items()},
                "fid": token,
                "fid_hmac": digest,
                "hendelse_dato_tolket": parse_xs_date(attrs.get("hendelseDato") or ""),
                "hendelse_guid_tolket": guid_key(guid)[:100] if guid else None,
                "type_id_tolket": n.type_id[:20] or None,
                "tjeneste_type_tolket": _read_type(n, position, attrs.get("tjenesteType")),
            }


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
