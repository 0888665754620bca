"""Races between messages, decided in the one write transaction (issue 11).

The intake checks a message while only reading the database, so a large message holds no
lock while it is checked (SQLite has one writer for the whole database). What the checks read
and the write needs still true is decided in the write transaction: the dedup claim (its
primary key) and the versions of the history the content was checked against. These tests
pause one message right after it read the history, let another message go all the way, and
then let the first one finish: the answers must be those of the two messages in turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.apprec.parse import parse_apprec
from app.dev.devpki import DevPki
from app.intake import history as history_repo
from app.intake import repository as repo
from app.models import Finding, IplosKommuneState, IplosNotification, MessageDedup
from tests.integration.messages import epj_message, post, reply_of
from tests.integration.test_intake_duplicates import _count, _messages
from tests.integration.test_intake_transport import assert_accepted, chained_heads

# a deadlock fails the test instead of hanging it (not a speed limit)
LIVENESS_SECONDS = 120

Reads = Callable[..., Awaitable[Any]]


@asynccontextmanager
async def first_check_paused(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[asyncio.Event, asyncio.Event, list[int]]]:
    """The first message to read the history waits, after reading it, until released.
    Yields (read: set once it has read, release, calls so far)."""
    read, release = asyncio.Event(), asyncio.Event()
    calls: list[int] = []
    real: Reads = history_repo.load_history

    async def paused(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        found = await real(*args, **kwargs)
        if len(calls) == 1:
            read.set()
            await release.wait()
        return found

    monkeypatch.setattr(history_repo, "load_history", paused)
    try:
        yield read, release, calls
    finally:
        release.set()


async def test_a_message_checked_against_history_that_changed_meanwhile_is_checked_again(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = chained_heads(2)
    async with first_check_paused(monkeypatch) as (read, release, calls):
        # the second message of the chain reads the (empty) history and waits there
        waiting = asyncio.create_task(post(intake, epj_message(pki, second)))
        await asyncio.wait_for(read.wait(), LIVENESS_SECONDS)
        # meanwhile the first one is checked, stored and answered: nothing holds it up
        answered = await asyncio.wait_for(post(intake, epj_message(pki, first)), LIVENESS_SECONDS)
        assert_accepted(pki, answered)
        release.set()
        later = await asyncio.wait_for(waiting, LIVENESS_SECONDS)

    # checked again against the history with the first message in it: no gap, as in turn
    assert_accepted(pki, later)
    apprec = reply_of(pki, later).apprec
    assert apprec is not None
    assert parse_apprec(apprec).errors == ()
    assert len(calls) == 3  # the second message read the history twice
    messages = await _messages(sessions)
    assert [m.status for m in messages] == ["OK", "OK"]
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Finding)) == 0
        versions = list(await s.scalars(select(IplosKommuneState.version)))
    assert versions == [2]  # each message checked against the history bumped it once
    assert await _count(sessions, IplosNotification) == 4


async def test_a_copy_that_loses_the_claim_race_gets_the_winners_reply(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = epj_message(pki)
    async with first_check_paused(monkeypatch) as (read, release, _calls):
        waiting = asyncio.create_task(post(intake, built))
        await asyncio.wait_for(read.wait(), LIVENESS_SECONDS)
        winner = await asyncio.wait_for(post(intake, built), LIVENESS_SECONDS)
        release.set()
        loser = await asyncio.wait_for(waiting, LIVENESS_SECONDS)

    assert_accepted(pki, winner)
    assert loser.status_code == 200
    assert loser.content == winner.content  # the stored reply, byte for byte
    messages = await _messages(sessions)
    assert sorted(m.status for m in messages) == ["DUPLICATE", "OK"]
    original = next(m for m in messages if m.status == "OK")
    async with sessions() as s:
        claims = list(await s.scalars(select(MessageDedup.message_id)))
    assert claims == [original.id]
    assert await _count(sessions, IplosNotification) == 3


async def test_a_message_that_lost_a_race_is_checked_again_holding_the_history(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real: Reads = history_repo.load_history
    calls: list[int] = []

    async def another_message_stored_meanwhile(*args: Any, **kwargs: Any) -> Any:
        found = await real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:  # as a message of the municipality stored by another process
            async with sessions() as s:
                s.add(IplosKommuneState(environment="pilot", kommune_nr="0301", version=7))
                await s.commit()
        return found

    monkeypatch.setattr(history_repo, "load_history", another_message_stored_meanwhile)
    built = epj_message(pki)
    response = await asyncio.wait_for(post(intake, built), LIVENESS_SECONDS)

    # the second check holds the state row (a second change could not get in) and passes
    assert_accepted(pki, response)
    assert len(calls) == 2
    (message,) = await _messages(sessions)
    assert message.status == "OK"
    assert message.raw == built.body
    async with sessions() as s:
        assert list(await s.scalars(select(IplosKommuneState.version))) == [8]
        assert await s.scalar(select(func.count()).select_from(MessageDedup)) == 1
    assert await _count(sessions, IplosNotification) == 3


async def test_a_copy_that_loses_the_claim_while_checked_exclusively_is_its_duplicate(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = epj_message(pki)
    first = await post(intake, built)
    assert_accepted(pki, first)
    real: Reads = repo.find_claim
    calls: list[object] = []

    async def claimed_meanwhile(*args: Any, **kwargs: Any) -> Any:
        # the first two look-ups miss the claim, as if its copy committed just after them:
        # the check, then the exclusive check, each lose the claim's race
        async with sessions() as s:  # not the request's session: it must not know the row
            found = await real(s, *args[1:], **kwargs)
        calls.append(found)
        return None if len(calls) <= 2 else found

    monkeypatch.setattr(repo, "find_claim", claimed_meanwhile)
    again = await asyncio.wait_for(post(intake, built), LIVENESS_SECONDS)

    assert again.content == first.content  # the stored reply, byte for byte
    assert len(calls) == 3  # checked twice; the second check found the claim at once
    messages = await _messages(sessions)
    assert [m.status for m in messages] == ["OK", "DUPLICATE"]
    assert await _count(sessions, MessageDedup) == 1
