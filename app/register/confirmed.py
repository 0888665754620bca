"""What KPR's loader has confirmed (`POST /api/v1/register/confirm` stores its cursor in
`register_feed`), as retention and the monitoring need it.

A melding is confirmed when the loader's cursor is past it: its feed_seq below the confirmed
one, or equal and none of its notifications after the confirmed notification id (a page may
end inside a melding)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.register.models import Melding, Notifikasjon, RegisterFeed


def _confirmed() -> Any:
    """A condition on `Melding` (correlated with its environment's register_feed row)."""
    feed = (
        select(RegisterFeed.confirmed_seq, RegisterFeed.confirmed_notifikasjon_id)
        .where(RegisterFeed.environment == Melding.environment)
        .correlate(Melding)
    )
    # no feed row yet: nothing confirmed (never NULL: NOT NULL would select nothing)
    seq = func.coalesce(feed.with_only_columns(RegisterFeed.confirmed_seq).scalar_subquery(), 0)
    last_id = func.coalesce(
        feed.with_only_columns(RegisterFeed.confirmed_notifikasjon_id).scalar_subquery(), 0
    )
    later_in_melding = exists().where(
        Notifikasjon.melding_id == Melding.id, Notifikasjon.id > last_id
    )
    return or_(
        func.coalesce(Melding.feed_seq, seq + 1) < seq,
        and_(Melding.feed_seq == seq, not_(later_in_melding)),
    )


def unconfirmed_messages(environments: Sequence[str]) -> Any:
    """The ids of messages whose register rows the loader of `environments` has not
    confirmed: retention removes nothing of them."""
    return (
        select(Melding.message_id)
        .where(Melding.environment.in_(list(environments)), not_(_confirmed()))
        .scalar_subquery()
    )


async def oldest_unconfirmed(
    session: AsyncSession, environments: Sequence[str]
) -> dict[str, datetime | None]:
    """Per loader environment: when the oldest melding not yet confirmed was received
    (None when the loader is up to date)."""
    rows = await session.execute(
        select(Melding.environment, func.min(Melding.received_at))
        .where(Melding.environment.in_(list(environments)), not_(_confirmed()))
        .group_by(Melding.environment)
    )
    found: dict[str, datetime | None] = dict.fromkeys(environments)
    for environment, at in rows.all():
        found[environment] = at
    return found
