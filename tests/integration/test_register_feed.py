"""The register feed, its confirmation and position (issue 19, docs/register-feed.md), through
the intake on both databases: every attribute as sent, pages in commit order that never skip
or repeat a row (also while messages are being stored), and only the loader's token."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.paging import decode_position, encode_position
from app.api.register import EpisodeOut, FeedItemOut, FeedPage, HendelseOut, MeldingOut
from app.content.model import EMPTY_GUID
from app.dev.devpki import DevPki
from app.models import AccessLog
from app.register.feed import LAST_ID
from app.register.models import Episode, Melding, Notifikasjon
from app.register.store import assign_feed_seq
from tests.integration.conftest import TEST_HER
from tests.integration.register_roundtrip import from_feed, sent, varied
from tests.integration.seed import add_message, auth, token
from tests.integration.test_intake_history import guid, melding, send
from tests.protector import PROTECTOR
from tests.register_messages import melding_xml

Sessions = async_sessionmaker[AsyncSession]
FEED = "/api/v1/register/notifications"
CONFIRM = "/api/v1/register/confirm"
POSITION = "/api/v1/register/position"


@pytest.fixture
def kpr(environments: httpx.AsyncClient) -> httpx.AsyncClient:
    """An intake with a pilot, a test and a production address."""
    return environments


@pytest.fixture
async def loader(sessions: Sessions) -> dict[str, str]:
    return auth(await token(sessions, "kpr-loader", "register"))


async def page(
    kpr: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    after: str | None = None,
    limit: int | None = None,
    environment: str = "pilot",
) -> dict[str, Any]:
    params: dict[str, str | int] = {"environment": environment}
    if after is not None:
        params["after"] = after
    if limit is not None:
        params["limit"] = limit
    r = await kpr.get(FEED, params=params, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def drain(
    kpr: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    after: str | None = None,
    limit: int = 1000,
    environment: str = "pilot",
) -> tuple[list[dict[str, Any]], str | None]:
    """Every page from `after` until one comes back empty: (items, the last `next`)."""
    items: list[dict[str, Any]] = []
    while True:
        body = await page(kpr, headers, after=after, limit=limit, environment=environment)
        assert len(body["items"]) <= limit
        items.extend(body["items"])
        after = body["next"]
        if not body["items"]:
            return items, after


async def stored_ids(sessions: Sessions, environment: str = "pilot") -> list[int]:
    async with sessions() as s:
        found = await s.scalars(
            select(Notifikasjon.id)
            .join(Melding, Melding.id == Notifikasjon.melding_id)
            .where(Melding.environment == environment)
        )
        return sorted(found)


def positions(items: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [decode_position(i["cursor"]) for i in items]


# --- every attribute as sent ---------------------------------------------------------------


async def test_every_attribute_of_every_notification_is_in_the_feed_as_sent(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, loader: dict[str, str]
) -> None:
    rng = random.Random(19)
    first = melding_xml(varied(rng), lokalident="lok-feed")
    second = melding_xml(varied(rng, "Q"), lokalident=None)
    for content in (first, second):
        answer = await send(kpr, pki, sessions, content)
        assert answer.status == "1", answer.ots
    items, _ = await drain(kpr, loader)
    assert from_feed(items) == sent(first) | sent(second)
    # the documented shape, exactly: no column more, none less
    FeedPage.model_validate({"items": items, "next": None})
    assert set(items[0]) == set(FeedItemOut.model_fields)
    assert set(items[0]["melding"]) == set(MeldingOut.model_fields)
    assert all(set(h) == set(HendelseOut.model_fields) for i in items for h in i["hendelser"])
    # the opened fid is the one sealed: fid_hmac joins
    for h in (h for i in items for h in i["hendelser"]):
        assert h["fid_hmac"] == PROTECTOR.digest(h["fid"])
    assert {i["melding"]["feed_seq"] for i in items} == {1, 2}
    assert items[0]["melding"]["lokalident"] == "lok-feed"
    assert items[-1]["melding"]["lokalident"] is None
    await _episodes_are_those_stored(sessions, items)


async def _episodes_are_those_stored(sessions: Sessions, items: list[dict[str, Any]]) -> None:
    """Each item carries the current episode of every key its events name (an annulled or
    replaced one may have none)."""
    async with sessions() as s:
        stored = {
            (e.environment, e.kommune_nr, e.bruker_nr, e.tjeneste_id): e
            for e in (await s.scalars(select(Episode))).all()
        }
    assert stored
    seen = 0
    for item in items:
        keys = dict.fromkeys(
            (item["environment"], item["kommune_nr"], h["bruker_nr"], h["tjeneste_id"])
            for h in item["hendelser"]
        )
        expected = [
            EpisodeOut.model_validate(stored[k], from_attributes=True).model_dump(mode="json")
            for k in keys
            if k in stored
        ]
        assert item["episoder"] == expected
        seen += len(expected)
    assert seen >= len(items) - 1  # nearly every item names an episode in force


# --- paging ------------------------------------------------------------------------------------


async def test_pages_follow_the_cursor_without_skips_or_repeats(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, loader: dict[str, str]
) -> None:
    first = melding(1, 1, EMPTY_GUID, n=3)
    second = melding(2, 4, guid(first), n=4)
    for content in (first, second):
        assert (await send(kpr, pki, sessions, content)).status == "1"
    other = melding(3, 1, EMPTY_GUID, n=2)
    assert (await send(kpr, pki, sessions, other, to=TEST_HER)).status == "1"

    empty = await page(kpr, loader, environment="production")
    assert empty == {"items": [], "next": None}
    whole = (await page(kpr, loader))["items"]
    assert [i["id"] for i in whole] == await stored_ids(sessions)
    assert len(whole) == 7

    items, last = await drain(kpr, loader, limit=2)
    assert [i["id"] for i in items] == [i["id"] for i in whole]
    assert positions(items) == sorted(set(positions(items)))  # strictly increasing
    # polling on from the end: nothing new, the same cursor back
    again = await page(kpr, loader, after=last)
    assert again == {"items": [], "next": last}
    # another environment is another feed
    test_items, _ = await drain(kpr, loader, environment="test")
    assert [i["id"] for i in test_items] == await stored_ids(sessions, "test")
    assert {i["environment"] for i in test_items} == {"test"}

    # a page that is not full ends past every melding numbered, also one without rows
    full = await page(kpr, loader, limit=7)
    assert decode_position(full["next"]) == positions(full["items"])[-1]
    short = await page(kpr, loader, limit=8)
    assert decode_position(short["next"]) == (2, LAST_ID)


async def test_a_cursor_that_is_not_ours_or_beyond_the_feed_is_refused(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, loader: dict[str, str]
) -> None:
    assert (await send(kpr, pki, sessions, melding(1, 1, EMPTY_GUID, n=2))).status == "1"
    for bad, status in [
        ("not-a-cursor", 400),
        ("eyJpZCI6IDF9", 400),  # a message cursor ({"id": 1}), not the feed's
        (encode_position(1, 0) + "!", 400),
        ("[" * 190, 400),
        ("x" * 201, 422),
        (encode_position(2, 0), 422),  # melding 2 is not numbered yet: would skip it
    ]:
        r = await kpr.get(FEED, params={"environment": "pilot", "after": bad}, headers=loader)
        assert r.status_code == status, (bad, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    refused: list[dict[str, str | int]] = [
        {"environment": "pilot", "limit": 0},
        {"environment": "pilot", "limit": 5001},
        {"environment": "nowhere"},
        {},
    ]
    for params in refused:
        r = await kpr.get(FEED, params=params, headers=loader)
        assert r.status_code == 422, r.text
    r = await kpr.get(FEED, params={"environment": "pilot", "limit": 5000}, headers=loader)
    assert r.status_code == 200


async def test_a_loader_paging_while_two_writers_commit_never_skips_a_row(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, loader: dict[str, str]
) -> None:
    seen: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def poll() -> None:
        after: str | None = None
        while True:
            finished = done.is_set()  # one more full pass after the writers are done
            body = await page(kpr, loader, after=after, limit=3)
            seen.extend(body["items"])
            after = body["next"]
            if not body["items"]:
                if finished:
                    return
                await asyncio.sleep(0.005)

    async def write() -> None:
        # a large and a small message side by side, twice: ids are taken in the order rows
        # are inserted, numbers in the order transactions commit
        for seed in (10, 20):
            results = await asyncio.gather(
                send(kpr, pki, sessions, melding(seed, 1, EMPTY_GUID, n=30)),
                send(kpr, pki, sessions, melding(seed + 1, 1, EMPTY_GUID, n=2), to=TEST_HER),
                send(kpr, pki, sessions, melding(seed + 2, 100, EMPTY_GUID, n=2)),
            )
            assert [r.status for r in results] == ["1", "1", "1"], [r.ots for r in results]
        done.set()

    await asyncio.gather(poll(), write())
    ids = [i["id"] for i in seen]
    assert len(ids) == len(set(ids))  # no repeats
    assert sorted(ids) == await stored_ids(sessions)  # no skips
    assert positions(seen) == sorted(positions(seen))
    assert len(ids) == 64


@pytest.mark.databases("postgresql")  # SQLite has one writer: no two open transactions
async def test_a_melding_committed_late_with_lower_ids_still_comes_after_the_cursor(
    kpr: httpx.AsyncClient, sessions: Sessions, loader: dict[str, str]
) -> None:
    """The case the feed's numbering exists for, made deterministic: a large message inserts
    its rows first (lower ids) and commits after a small one the loader has already paged
    past. Paging by notifikasjon id would skip it. (Two open write transactions at once:
    PostgreSQL only; SQLite has one writer.)"""
    large, small = (await add_message(sessions)).id, (await add_message(sessions)).id
    async with sessions() as slow, sessions() as quick:
        slow_melding = await _melding(slow, large, notifications=4)
        quick_melding = await _melding(quick, small, notifications=2)
        await assign_feed_seq(quick, "pilot", quick_melding)
        await quick.commit()
        body = await page(kpr, loader)
        assert [i["melding_id"] for i in body["items"]] == [quick_melding] * 2
        await assign_feed_seq(slow, "pilot", slow_melding)
        await slow.commit()
    later = await page(kpr, loader, after=body["next"])
    assert [i["melding_id"] for i in later["items"]] == [slow_melding] * 4
    assert max(i["id"] for i in later["items"]) < min(i["id"] for i in body["items"])


async def _melding(session: AsyncSession, message_id: int, *, notifications: int) -> int:
    row = Melding(
        message_id=message_id,
        environment="pilot",
        kommune_nr="0301",
        received_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    for i in range(notifications):
        session.add(
            Notifikasjon(
                melding_id=row.id,
                environment="pilot",
                kommune_nr="0301",
                position=i + 1,
                notifikasjon_guid_tolket=f"g-{message_id}-{i}",
            )
        )
    await session.flush()
    return row.id


# --- confirmation and position -------------------------------------------------------------------


async def _confirm(
    kpr: httpx.AsyncClient, headers: dict[str, str], cursor: str, environment: str = "pilot"
) -> httpx.Response:
    return await kpr.post(
        CONFIRM, json={"environment": environment, "cursor": cursor}, headers=headers
    )


async def _position(
    kpr: httpx.AsyncClient, headers: dict[str, str], environment: str = "pilot"
) -> dict[str, Any]:
    r = await kpr.get(POSITION, params={"environment": environment}, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_confirm_moves_forwards_only_and_never_past_the_feed(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, loader: dict[str, str]
) -> None:
    start = await _position(kpr, loader)
    assert start == {
        "environment": "pilot",
        "last_seq": 0,
        "confirmed_seq": 0,
        "confirmed_notifikasjon_id": 0,
        "confirmed_cursor": encode_position(0, 0),
        "confirmed_at": None,
        "unconfirmed_notifications": 0,
        "oldest_unconfirmed_received_at": None,
    }
    r = await _confirm(kpr, loader, encode_position(0, 0))  # the start, before anything
    assert r.status_code == 200, r.text
    assert (await _confirm(kpr, loader, encode_position(1, 0))).status_code == 422

    first = melding(1, 1, EMPTY_GUID, n=3)
    for content in (first, melding(2, 4, guid(first), n=2)):
        assert (await send(kpr, pki, sessions, content)).status == "1"
    before = await _position(kpr, loader)
    assert (before["last_seq"], before["unconfirmed_notifications"]) == (2, 5)
    async with sessions() as s:
        received = list(await s.scalars(select(Melding.received_at).order_by(Melding.feed_seq)))
    assert datetime.fromisoformat(before["oldest_unconfirmed_received_at"]) == received[0]

    one = await page(kpr, loader, limit=4)
    r = await _confirm(kpr, loader, one["next"])
    assert r.status_code == 200, r.text
    kept = r.json()
    assert kept["confirmed_cursor"] == one["next"]
    assert (kept["confirmed_seq"], kept["confirmed_notifikasjon_id"]) == decode_position(
        one["next"]
    )
    assert kept["confirmed_at"] is not None
    assert (await _confirm(kpr, loader, one["next"])).status_code == 200  # the same again: fine
    after = await _position(kpr, loader)
    assert after["unconfirmed_notifications"] == 1
    assert datetime.fromisoformat(after["oldest_unconfirmed_received_at"]) == received[1]

    back = await _confirm(kpr, loader, one["items"][0]["cursor"])
    assert back.status_code == 409
    assert back.headers["content-type"] == "application/problem+json"
    assert "backwards" in back.json()["detail"]
    beyond = await _confirm(kpr, loader, encode_position(3, 0))
    assert beyond.status_code == 422
    assert "beyond" in beyond.json()["detail"]
    assert (await _confirm(kpr, loader, "garbage")).status_code == 400
    assert (await _confirm(kpr, loader, encode_position(1, 0), "production")).status_code == 422
    unchanged = await _position(kpr, loader)
    assert unchanged["confirmed_cursor"] == one["next"]

    rest = await page(kpr, loader, after=one["next"])
    assert (await _confirm(kpr, loader, rest["next"])).status_code == 200
    done = await _position(kpr, loader)
    assert (done["unconfirmed_notifications"], done["oldest_unconfirmed_received_at"]) == (0, None)
    # the position resumes the feed: nothing after it
    assert (await page(kpr, loader, after=done["confirmed_cursor"]))["items"] == []


# --- who may read it ---------------------------------------------------------------------


async def test_only_the_loader_reads_the_feed_and_every_read_is_logged(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, loader: dict[str, str]
) -> None:
    assert (await send(kpr, pki, sessions, melding(1, 1, EMPTY_GUID, n=2))).status == "1"
    operator = auth(await token(sessions, "ops", "operator"))
    oslo = auth(await token(sessions, "oslo", "municipality:0301"))
    cursor = encode_position(0, 0)
    calls = [
        ("GET", FEED, {"params": {"environment": "pilot"}}),
        ("POST", CONFIRM, {"json": {"environment": "pilot", "cursor": cursor}}),
        ("GET", POSITION, {"params": {"environment": "pilot"}}),
    ]
    for method, path, kwargs in calls:
        r = await kpr.request(method, path, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 401, (path, r.text)
        r = await kpr.request(method, path, headers=oslo, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 403, (path, r.text)
        r = await kpr.request(method, path, headers=operator, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == (200 if path == POSITION else 403), (path, r.text)
        r = await kpr.request(method, path, headers=loader, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 200, (path, r.text)
    # the loader reads nothing else
    for path in ("/api/v1/messages", "/api/v1/kommuner/0301/feilliste", "/api/v1/parties"):
        assert (await kpr.get(path, headers=loader)).status_code == 403, path
    assert (await kpr.get("/api/v1/whoami", headers=loader)).json()["role"] == "register"

    async def logged() -> list[AccessLog]:
        async with sessions() as s:
            rows = await s.scalars(select(AccessLog).where(AccessLog.action == "register.feed"))
            return list(rows)

    assert len(await logged()) == 1  # the loader's read above
    first = await page(kpr, loader, limit=1)
    second = await page(kpr, loader, after=first["next"], limit=1)
    await page(kpr, loader, after=second["next"])  # nothing new: nothing disclosed
    rows = await logged()
    assert len(rows) == 3
    last = rows[-1]
    assert (last.actor, last.role, last.token_id is not None) == ("kpr-loader", "register", True)
    assert last.resource == (
        f"{FEED}?environment=pilot&after={first['next']}&until={second['next']}"
    )
    assert last.request_id


async def test_positions_reach_confirmed_meldinger_without_rows(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, loader: dict[str, str]
) -> None:
    """An identical resend stores a melding with no notifications at the end of the feed;
    the `next` of the last page passes it, so confirming that leaves nothing behind."""
    content = melding(1, 1, EMPTY_GUID, n=2)
    assert (await send(kpr, pki, sessions, content)).status == "1"
    assert (await send(kpr, pki, sessions, content)).status == "1"
    async with sessions() as s:
        assert await s.scalar(select(func.max(Melding.feed_seq))) == 2
        assert await s.scalar(select(func.count()).select_from(Notifikasjon)) == 2
    items, last = await drain(kpr, loader)
    assert len(items) == 2
    assert last is not None
    assert decode_position(last) == (2, LAST_ID)
    assert (await _confirm(kpr, loader, last)).status_code == 200
    assert (await _position(kpr, loader))["unconfirmed_notifications"] == 0
