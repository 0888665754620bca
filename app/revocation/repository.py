"""The certificates the party registry holds, read for their CRL distribution points."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import PartyCertificate


async def registered_certificate_pems(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(PartyCertificate.pem)))
