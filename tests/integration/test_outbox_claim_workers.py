"""Under `serve --workers N` every worker runs its own outbox sender: claims made at the same
time through separate engines (as separate processes hold them) never hand one row to two
senders, on SQLite (one statement under its write lock) as on PostgreSQL (SKIP LOCKED)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from app.models import NotificationOutbox
from app.notify.repository import claim_due
from app.platform.db import create_engine, session_factory

ROWS = 60


async def _claim_until_empty(url: str, now: datetime) -> list[int]:
    engine = create_engine(url)
    sessions = session_factory(engine)
    claimed: list[int] = []
    try:
        while True:
            async with sessions() as session:
                got = await claim_due(session, now, batch=3, lease=timedelta(minutes=10))
                await session.commit()
            if not got:
                return claimed
            claimed.extend(c.id for c in got)
            await asyncio.sleep(0)
    finally:
        await engine.dispose()


async def test_concurrent_senders_never_claim_one_row_twice(clean_database_url: str) -> None:
    now = datetime.now(UTC)
    engine = create_engine(clean_database_url)
    try:
        async with session_factory(engine)() as session:
            session.add_all(
                NotificationOutbox(
                    recipient=f"r{i}@kommune.example",
                    subject="s",
                    body="b",
                    next_attempt_at=now - timedelta(seconds=1),
                )
                for i in range(ROWS)
            )
            await session.commit()
    finally:
        await engine.dispose()

    workers = await asyncio.gather(*(_claim_until_empty(clean_database_url, now) for _ in range(4)))

    everything = [i for w in workers for i in w]
    assert len(everything) == ROWS
    assert len(set(everything)) == ROWS
