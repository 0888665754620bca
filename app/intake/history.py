"""The IPLOS history across messages (løpenummer, GUIDs, brukerNr ↔ fid): all its SQL.

The content checks are pure; they get a frozen `IplosHistory` loaded here, and what an accepted
message establishes is stored here.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.content.model import ContentResult, HistoryKeys, IplosHistory, normalize_guid
from app.models import IplosBruker, IplosKommuneState, IplosNotification


async def load_history(
    session: AsyncSession, kommuner: Sequence[str], keys: HistoryKeys
) -> IplosHistory:
    """The history rows a message's checks need (`keys`), for the municipalities the sender
    may report for, with their sequence rows locked (FOR UPDATE) so løpenummer checks of two
    messages cannot interleave."""
    if not kommuner:
        return IplosHistory()
    for k in kommuner:
        if await session.get(IplosKommuneState, k) is None:
            try:
                async with session.begin_nested():
                    session.add(IplosKommuneState(kommune_nr=k))
            except IntegrityError:  # another process created it first: fine
                pass
    states = list(
        await session.scalars(
            select(IplosKommuneState)
            .where(IplosKommuneState.kommune_nr.in_(list(kommuner)))
            .with_for_update()
        )
    )
    known: dict[str, str] = {}
    for chunk in _chunks(keys.guids):
        rows = await session.execute(
            select(IplosNotification.guid, IplosNotification.status).where(
                IplosNotification.kommune_nr.in_(kommuner), IplosNotification.guid.in_(chunk)
            )
        )
        known.update({normalize_guid(g): st for g, st in rows.all()})
    brukere: dict[tuple[str, str], str] = {}
    for column, values in (
        (IplosBruker.bruker_nr, keys.bruker_nrs),
        (IplosBruker.fid, keys.fids),
    ):
        for chunk in _chunks(values):
            found = await session.execute(
                select(IplosBruker.kommune_nr, IplosBruker.bruker_nr, IplosBruker.fid).where(
                    IplosBruker.kommune_nr.in_(kommuner), column.in_(chunk)
                )
            )
            brukere.update({(k, b): f for k, b, f in found.all()})
    return IplosHistory(
        last_lopenr={st.kommune_nr: st.last_lopenr for st in states if st.last_lopenr is not None},
        last_guid={st.kommune_nr: st.last_guid for st in states if st.last_guid},
        known_guids=known,
        bruker_fid=brukere,
    )


async def store_history(session: AsyncSession, message_id: int, result: ContentResult) -> None:
    """Move the history on with an accepted message: the sequence, its notifications and
    the brukerNr ↔ fid pairs."""
    before = IplosHistory()
    after = before.updated_with(result.notifications)
    for kommune, lopenr in after.last_lopenr.items():
        state = await session.get(IplosKommuneState, kommune)
        if state is None:
            state = IplosKommuneState(kommune_nr=kommune)
            session.add(state)
        state.last_lopenr = lopenr
        state.last_guid = after.last_guid.get(kommune)
    for n in result.notifications:
        if n.dropped:
            continue
        session.add(
            IplosNotification(
                message_id=message_id,
                kommune_nr=n.kommune_nr,
                guid=n.guid,
                status=n.status,
                lopenr=n.lopenr,
                forrige_guid=n.forrige_guid,
                ref=n.ref,
                event=n.event,
                tjeneste_type=n.events[0].tjeneste_type if n.events else "",
                hendelse_dato=n.hendelse_dato.isoformat() if n.hendelse_dato else "",
                bruker_nr=n.bruker_nr,
            )
        )
        if not n.identifies_person:
            continue  # a typeID 9 birth date must not replace the brukerNr's number
        bruker = await session.get(IplosBruker, (n.kommune_nr, n.bruker_nr))
        if bruker is None:
            session.add(IplosBruker(kommune_nr=n.kommune_nr, bruker_nr=n.bruker_nr, fid=n.fid))
        else:
            bruker.fid = n.fid
    await session.flush()


def _chunks(values: frozenset[str], size: int = 500) -> list[list[str]]:
    """IN-lists in bounded chunks (database parameter limits)."""
    ordered = sorted(values)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]
