"""All SQL of the API tokens."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.tokens import (
    LAST_USED_RESOLUTION,
    Principal,
    TokenRole,
    hash_token,
    new_token,
    parse_role,
)
from app.models import ApiToken, token_expiry, utcnow


async def create_token(
    session: AsyncSession, name: str, role: str, *, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """A new token for `role`, valid until `expires_at` (default: a year from now); returns
    the row and the token itself (shown once)."""
    role_name, kommune_nr = parse_role(role)
    plaintext = new_token()
    row = ApiToken(
        name=name,
        token_hash=hash_token(plaintext),
        role=role_name.value,
        kommune_nr=kommune_nr,
        expires_at=expires_at or token_expiry(),
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
    """The token's principal, or None when unknown, revoked or expired (a token without an
    expiry, written by hand, counts as expired). Marks the token used (at most every
    LAST_USED_RESOLUTION); the caller commits."""
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    now = now or datetime.now(UTC)
    if row.expires_at is None or row.expires_at <= now:
        return None
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
    return Principal(
        token_id=row.id, name=row.name, role=TokenRole(row.role), kommune_nr=row.kommune_nr
    )
