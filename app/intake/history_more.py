"""History the rules of issue 21 read besides `app/intake/history.py`'s: the services' starts
in the register store (a service type is judged at its start), the GUIDs KPR received on
rows it did not take (what happened to an original; a corrected resend after a rejection),
and the løpenummer of such rows (received, so not missing)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.content.model import ContentResult, Ranges, add_to_ranges
from app.models import Finding
from app.platform.db import chunks, is_postgres, one_of
from app.query.feilliste import failing_in
from app.register.models import Hendelse

_PAIRS = 200  # (brukerNr, tjenesteID) pairs per query


async def service_starts(
    session: AsyncSession,
    environment: str,
    kommuner: Sequence[str],
    services: Iterable[tuple[str, str]],
) -> dict[tuple[str, str, str], datetime.date]:
    """(kommune, brukerNr, tjenesteID) -> the TjenesteStart's hendelseDato the register store
    holds (the latest stored, should a correction have moved it). Read through the episode
    index (environment, kommune, brukerNr, tjenesteID)."""
    pairs = sorted(set(services))
    found: dict[tuple[str, str, str], datetime.date] = {}
    if not pairs or not kommuner:
        return found
    for i in range(0, len(pairs), _PAIRS):
        chunk = pairs[i : i + _PAIRS]
        rows = await session.execute(
            select(
                Hendelse.kommune_nr,
                Hendelse.bruker_nr,
                Hendelse.tjeneste_id,
                Hendelse.hendelse_dato_tolket,
            )
            .where(
                Hendelse.environment == environment,
                Hendelse.kommune_nr.in_(list(kommuner)),
                Hendelse.hendelse_type == "TjenesteStart",
                Hendelse.hendelse_dato_tolket.is_not(None),
                # two IN lists, not an OR of pairs: SQLite then reads the episode index
                Hendelse.bruker_nr.in_(sorted({b for b, _ in chunk})),
                Hendelse.tjeneste_id.in_(sorted({t for _, t in chunk})),
            )
            .order_by(Hendelse.id)
        )
        wanted = set(chunk)
        for k, b, t, d in rows.all():
            if b is not None and t is not None and (b, t) in wanted and d is not None:
                found[(k, b, t)] = d  # the latest wins
    return found


async def refused(
    session: AsyncSession, environment: str, kommuner: Sequence[str], guids: Iterable[str]
) -> dict[str, datetime.datetime]:
    """notifikasjonGUID -> when KPR first received it on a row it dropped or in a message it
    rejected (its failing findings, read through the error list's partial index)."""
    found: dict[str, datetime.datetime] = {}
    wanted = frozenset(guids)
    if not wanted or not kommuner:
        return found
    pg = await is_postgres(session)
    for chunk in chunks(wanted):
        rows = await session.execute(
            select(Finding.notification_guid, func.min(Finding.received_at))
            .where(
                # the error list's conditions: its partial index ix_finding_failing_guid
                *failing_in(),
                Finding.kommune_nr.in_(list(kommuner)),
                one_of(Finding.notification_guid, chunk, pg),
                Finding.environment == environment,
            )
            .group_by(Finding.notification_guid)
        )
        for g, at in rows.all():
            if g is not None and at is not None:
                found[g] = at
    return found


def with_refused(received: Mapping[str, Ranges], result: ContentResult) -> dict[str, Ranges]:
    """The received ranges with the løpenummer of the message's rows KPR did not take."""
    numbers: dict[str, list[int]] = {}
    for n in result.notifications:
        if n.dropped and n.lopenr is not None:
            numbers.setdefault(n.kommune_nr, []).append(n.lopenr)
    out = dict(received)
    for kommune, nums in numbers.items():
        out[kommune] = add_to_ranges(out.get(kommune, ()), nums)
    return out
