"""Keeping identifiers sealed under the current key: re-encrypting after a key rotation
(`kpr-mottak register rotate-key`), and sealing values stored in clear before the register
store existed (migration 0019; `kpr-mottak db upgrade` runs `seal_legacy`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Finding, IplosBruker
from app.register.models import Hendelse
from app.register.protect import Protector

BATCH = 1000


@dataclass(frozen=True, slots=True)
class SealedTable:
    """A table whose `fid` column holds sealed tokens, with its key columns."""

    name: str
    model: Any
    keys: tuple[str, ...]
    hashed: bool = False  # it also keeps the fid's keyed hash (`fid_hmac`) for look-ups


SEALED = (
    SealedTable("hendelse", Hendelse, ("id",)),
    SealedTable("finding", Finding, ("id",)),
    SealedTable("iplos_bruker", IplosBruker, ("environment", "kommune_nr", "bruker_nr"), True),
)


def _not_current(table: SealedTable, protector: Protector) -> Any:
    return not_(table.model.fid.like(f"{protector.current}:%"))


def _legacy(table: SealedTable) -> Any:
    in_clear = not_(table.model.fid.like("%:%"))
    return or_(in_clear, table.model.fid_hmac.is_(None)) if table.hashed else in_clear


async def count_to_rotate(session: AsyncSession, protector: Protector) -> dict[str, int]:
    """Rows per table whose fid is not sealed under the current key."""
    out: dict[str, int] = {}
    for t in SEALED:
        where = (t.model.fid.is_not(None), _not_current(t, protector))
        out[t.name] = int(await session.scalar(select(func.count()).where(*where)) or 0)
    return out


async def _reseal_batch(
    session: AsyncSession, protector: Protector, table: SealedTable, where: Any
) -> int:
    """Up to `BATCH` rows matching `where` sealed again under the current key (a value in
    clear is sealed as it is); returns how many."""
    model = table.model
    key_columns = [getattr(model, k) for k in table.keys]
    rows = (
        await session.execute(
            select(*key_columns, model.fid).where(model.fid.is_not(None), where).limit(BATCH)
        )
    ).all()
    for row in rows:
        key, token = tuple(row)[:-1], str(row[-1])
        value = protector.open(token) if ":" in token else token
        values: dict[str, Any] = {"fid": protector.seal(value)}
        if table.hashed:
            values["fid_hmac"] = protector.digest(value)
        match = and_(*(c == k for c, k in zip(key_columns, key, strict=True)))
        await session.execute(update(model).where(match).values(values))
    return len(rows)


async def rotate_all(
    session: AsyncSession, protector: Protector, progress: Callable[[str, int], None]
) -> dict[str, int]:
    """Every sealed value under the current key, batch by batch, each batch committed (a
    rotation interrupted half way leaves every row readable: the old keys still open it)."""
    done: dict[str, int] = {}
    for table in SEALED:
        done[table.name] = 0
        while n := await _reseal_batch(session, protector, table, _not_current(table, protector)):
            await session.commit()
            done[table.name] += n
            progress(table.name, n)
    return done


async def seal_legacy(session: AsyncSession, protector: Protector) -> int:
    """Seal fids stored in clear before migration 0019 (the history's pairs also get their
    keyed hash). Returns the rows sealed; the caller commits."""
    sealed = 0
    for table in SEALED:
        while n := await _reseal_batch(session, protector, table, _legacy(table)):
            sealed += n
    return sealed
