"""API tokens: random, shown once, stored as SHA-256 (they carry 256 bits of entropy, so a
plain hash is enough; no password stretching needed)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiToken, utcnow

TOKEN_PREFIX = "kpr_"  # noqa: S105 - a prefix, not a secret
_ROLE = re.compile(r"^(operator|municipality:(\d{4}))$")


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: int
    name: str
    role: str  # operator | municipality
    kommune_nr: str | None

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def may_read_kommune(self, kommune_nr: str | None) -> bool:
        return self.is_operator or (kommune_nr is not None and kommune_nr == self.kommune_nr)

    @property
    def label(self) -> str:
        return self.role if self.kommune_nr is None else f"{self.role}:{self.kommune_nr}"


def parse_role(role: str) -> tuple[str, str | None]:
    """'operator' or 'municipality:<kommunenr>' -> (role, kommune_nr)."""
    match = _ROLE.match(role)
    if not match:
        raise ValueError(
            f"unknown role '{role}': use 'operator' or 'municipality:<4-digit kommunenr>'"
        )
    return ("municipality", match.group(2)) if match.group(2) else ("operator", None)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(session: AsyncSession, name: str, role: str) -> tuple[ApiToken, str]:
    role_name, kommune_nr = parse_role(role)
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name, token_hash=hash_token(plaintext), role=role_name, kommune_nr=kommune_nr
    )
    session.add(row)
    await session.flush()
    return row, plaintext


async def revoke_token(session: AsyncSession, name: str, now: datetime | None = None) -> bool:
    row = await session.scalar(select(ApiToken).where(ApiToken.name == name))
    if row is None:
        return False
    if row.revoked_at is None:
        row.revoked_at = now or utcnow()
    return True


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    return list(await session.scalars(select(ApiToken).order_by(ApiToken.name)))


async def authenticate(
    session: AsyncSession, token: str, *, now: datetime | None = None
) -> Principal | None:
    """The token's principal, or None when unknown or revoked. Marks the token used (at most
    every few minutes: a read must not become a write per request); the caller commits."""
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    now = now or datetime.now(UTC)
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
    return Principal(token_id=row.id, name=row.name, role=row.role, kommune_nr=row.kommune_nr)


LAST_USED_RESOLUTION = timedelta(minutes=5)
