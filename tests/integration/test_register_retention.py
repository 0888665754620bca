"""Retention by hand-off (issue 19): in an environment KPR's loader takes, nothing the loader
has not confirmed is removed (the request body, the identifiers in the register rows); once
confirmed the configured periods apply (the rows stay: episodes are derived from them); in
every other environment the rows and their episodes go with the history's period."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.devpki import DevPki
from app.models import Message
from app.platform.settings import Settings
from app.register.confirmed import oldest_unconfirmed
from app.register.models import Episode, Hendelse, Melding, Notifikasjon, RegisterFeed
from app.retention.policy import apply_retention
from tests.integration.conftest import THREE_ADDRESSES, served
from tests.integration.test_intake_history import send
from tests.register_messages import Event, Notif, melding_xml, person

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def kpr(environments: httpx.AsyncClient) -> httpx.AsyncClient:
    return environments


async def _two_old_messages(kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions) -> list[int]:
    rng = random.Random(4)
    for lopenr in (1, 2):
        notif = Notif(
            lopenr, person(rng, f"B{lopenr}"), (Event("TjenesteStart", "T", "2018-01-02"),)
        )
        assert (await send(kpr, pki, sessions, melding_xml([notif]))).status == "1"
    async with sessions() as s:
        ids = list(await s.scalars(select(Melding.message_id).order_by(Melding.feed_seq)))
        long_ago = datetime.now(UTC) - timedelta(days=2000)
        await s.execute(update(Message).values(received_at=long_ago))
        await s.execute(update(Melding).values(received_at=long_ago))
        await s.commit()
    return ids


async def _kept(sessions: Sessions) -> tuple[list[int], list[int]]:
    """The messages whose body is kept, and those whose register rows keep their fids."""
    async with sessions() as s:
        raw = list(await s.scalars(select(Message.id).where(Message.raw.is_not(None))))
        with_fid = await s.scalars(
            select(Melding.message_id)
            .join(Notifikasjon, Notifikasjon.melding_id == Melding.id)
            .join(Hendelse, Hendelse.notifikasjon_id == Notifikasjon.id)
            .where(Hendelse.fid.is_not(None))
            .distinct()
        )
    return sorted(raw), sorted(with_fid)


async def test_nothing_the_loader_has_not_confirmed_is_removed(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, settings_with_pki: Settings
) -> None:
    first, second = await _two_old_messages(kpr, pki, sessions)
    loader_takes_pilot = settings_with_pki.model_copy(update={"register_environments": ("pilot",)})
    async with sessions() as s:
        oldest = await oldest_unconfirmed(s, ["pilot"])
        assert oldest["pilot"] is not None  # the loader is behind
    await apply_retention(sessions, loader_takes_pilot, datetime.now(UTC))
    assert await _kept(sessions) == ([first, second], [first, second])

    # the loader confirms the first message's rows: they, and its body, may go now
    async with sessions() as s:
        last = await s.scalar(
            select(func.max(Notifikasjon.id))
            .join(Melding, Melding.id == Notifikasjon.melding_id)
            .where(Melding.message_id == first)
        )
        await s.execute(
            update(RegisterFeed)
            .where(RegisterFeed.environment == "pilot")
            .values(confirmed_seq=1, confirmed_notifikasjon_id=last)
        )
        await s.commit()
    await apply_retention(sessions, loader_takes_pilot, datetime.now(UTC))
    assert await _kept(sessions) == ([second], [second])
    async with sessions() as s:  # the rows and the episodes stay, without the fid
        assert len((await s.scalars(select(Melding))).all()) == 2
        assert len((await s.scalars(select(Episode))).all()) == 2


async def test_a_page_ending_inside_a_melding_confirms_only_what_it_covered(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, settings_with_pki: Settings
) -> None:
    first, second = await _two_old_messages(kpr, pki, sessions)
    async with sessions() as s:
        await s.execute(
            update(RegisterFeed)
            .where(RegisterFeed.environment == "pilot")
            .values(confirmed_seq=1, confirmed_notifikasjon_id=0)
        )
        await s.commit()
    loader_takes_pilot = settings_with_pki.model_copy(update={"register_environments": ("pilot",)})
    await apply_retention(sessions, loader_takes_pilot, datetime.now(UTC))
    assert await _kept(sessions) == ([first, second], [first, second])


async def test_environments_no_loader_takes_follow_the_configured_periods(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, settings_with_pki: Settings
) -> None:
    await _two_old_messages(kpr, pki, sessions)
    assert settings_with_pki.register_environments == ("production",)
    await apply_retention(sessions, settings_with_pki, datetime.now(UTC))
    assert await _kept(sessions) == ([], [])
    async with sessions() as s:  # pilot rows go, and the episodes they backed
        assert (await s.scalars(select(Melding))).all() == []
        assert (await s.scalars(select(Episode))).all() == []


async def test_metrics_and_readyz_show_a_loader_falling_behind(
    pki: DevPki, sessions: Sessions, settings_with_pki: Settings, demo_party: int
) -> None:
    loader_takes_pilot = settings_with_pki.model_copy(
        update={"register_environments": ("pilot",), "receivers": THREE_ADDRESSES}
    )
    async with served(loader_takes_pilot) as client:
        ready = (await client.get("/readyz")).json()
        assert ready["register_unconfirmed_oldest_seconds"] == {"pilot": 0}
        await _two_old_messages(client, pki, sessions)
        ready = await client.get("/readyz")
        assert ready.status_code == 200  # behind is no reason to leave the load balancer
        assert ready.json()["register_unconfirmed_oldest_seconds"]["pilot"] > 1000 * 86400
        metrics = (await client.get("/metrics")).text
    (line,) = [
        x for x in metrics.splitlines() if x.startswith("kpr_register_unconfirmed_oldest_seconds{")
    ]
    assert 'environment="pilot"' in line
    assert float(line.split()[-1]) > 1000 * 86400
