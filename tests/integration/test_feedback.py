"""The open feedback (issue 14) on SQLite and PostgreSQL: the refresh from the stored history
and the register store, the figures with their suppression, the pages (ETag, filters,
sorting), JSON and CSV, the incremental refresh, the CLI, a message through the real intake,
and a privacy scan over everything published."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from app.cli.root import app as cli
from app.dev.devpki import DevPki
from app.feedback.refresh import refresh_once
from app.feedback.tables import FeedbackKommune, FeedbackState
from app.models import (
    Finding,
    IplosBruker,
    IplosNotification,
    Message,
)
from app.platform.settings import Settings
from app.register.models import Episode, Hendelse, Notifikasjon
from tests.integration.conftest import Snapshot, _Databases, restore_snapshot, take_snapshot
from tests.integration.messages import epj_message, post
from tests.integration.seed import T0, User, add_register_message
from tests.protector import PROTECTOR

Sessions = async_sessionmaker[AsyncSession]
YEAR = {"year": "2018"}


@pytest.fixture(autouse=True)
def _no_background_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests refresh when they choose to."""
    monkeypatch.setenv("KPR_FEEDBACK_REFRESH_SECONDS", "0")


OSLO_USERS = (
    [User(("21",)) for _ in range(3)]  # long-term: 3 -> "<5"
    + [User(("15", "1")) for _ in range(30)]  # at home: 30
    + [User(("18",), org_nr=False) for _ in range(7)]  # other: 7 -> hidden (secondary)
)


@pytest.fixture
async def world(
    sessions: Sessions,
    settings: Settings,
    migrated_databases: _Databases,
    snapshots: dict[tuple[str, str], Snapshot],
) -> Sessions:
    """Oslo: 40 users over two messages, 3 dropped notifications, 10 warnings; Bergen: 3
    accepted notifications (all small); Trondheim only in the pilot; a late one in Bærum and
    one after KOSTRA in Asker. Built and refreshed once per session and database, then copied
    (the rows as the first build left them)."""
    key = ("test_feedback.world", settings.database_url)
    if key in snapshots:
        await restore_snapshot(settings.database_url, snapshots[key])
        return sessions
    await _build_world(sessions, settings)
    snapshots[key] = await take_snapshot(settings.database_url, migrated_databases)
    return sessions


async def _build_world(sessions: Sessions, settings: Settings) -> None:
    await add_register_message(
        sessions, kommune="0301", users=OSLO_USERS[:20], dropped=3, warned=10
    )
    await add_register_message(
        sessions, kommune="0301", received_at=T0 + timedelta(days=40), users=OSLO_USERS[20:]
    )
    await add_register_message(sessions, kommune="1201", users=[User(("15",)) for _ in range(3)])
    await add_register_message(
        sessions, kommune="5001", environment="pilot", users=[User(("21",))] * 6
    )
    await add_register_message(
        sessions,
        kommune="0219",
        received_at=datetime(2019, 2, 1, 10, tzinfo=UTC),
        users=[User(("15",)) for _ in range(8)],
    )
    await add_register_message(
        sessions,
        kommune="0220",
        received_at=datetime(2019, 3, 18, 10, tzinfo=UTC),
        users=[User(("15",)) for _ in range(9)],
    )
    report = await refresh_once(sessions, settings)
    assert report.touched > 0


async def test_the_overview_has_every_municipality_and_suppresses_small_counts(
    client: httpx.AsyncClient, world: Sessions
) -> None:
    r = await client.get("/api/v1/feedback", params=YEAR)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["kommuner"]) == body["headline"]["kommuner"] == 422
    by = {k["kommune_nr"]: k for k in body["kommuner"]}
    oslo, bergen = by["0301"], by["1201"]
    assert (oslo["name"], oslo["readable"], oslo["messages"]["text"]) == ("Oslo", True, "<5")
    assert oslo["accepted"]["value"] == 40
    # 3 of 43 with errors: the count is small, so the share is suppressed
    assert oslo["error_share"] == {"value": None, "text": "<5", "suppressed": True}
    assert oslo["top_rule"] == "IPL-FID-INVALID"
    assert "EPJ" in oslo["top_rule_text"]
    assert oslo["timeliness"] == "on_time"
    assert bergen["accepted"] == {"value": None, "text": "<5", "suppressed": True}
    assert by["0219"]["timeliness"] == "late"
    assert by["0219"]["after_kostra"] is False
    assert by["0220"]["after_kostra"] is True
    assert by["5001"]["readable"] is False  # the pilot is another environment
    head = body["headline"]
    assert head["delivered"] == 4
    assert head["on_time"] == 2
    # the national total adds up the published cells only: Bergen's 3 is not in it
    assert head["accepted"]["value"] == 40 + 8 + 9
    assert body["pilot_delivered"] == 1


async def test_one_municipality_with_medians_and_secondary_suppression(
    client: httpx.AsyncClient, world: Sessions
) -> None:
    r = await client.get("/api/v1/feedback/0301", params=YEAR)
    assert r.status_code == 200, r.text
    k = r.json()
    assert k["users"]["value"] == 40
    groups = {g["key"]: g for g in k["user_groups"]}
    # 40 users, 30 at home and 7 users of the institution type 18 (so at most 7 "other")
    # would leave the long-term group 3 or 4 of "<5": it reads "skjult", and the 7 is hidden
    assert groups["home"]["users"]["value"] == 30
    assert groups["long_term"]["users"] == {"value": None, "text": "skjult", "suppressed": True}
    assert groups["other"]["users"] == {"value": None, "text": "skjult", "suppressed": True}
    assert groups["other"]["share"]["value"] is None
    services = {s["tjeneste_type"]: s for s in k["services"]}
    assert services["15"]["name"] == "Helsetjenester i hjemmet"
    assert services["15"]["users"]["value"] == 30
    assert services["21"]["users"]["text"] == "skjult"  # long-term is service 21
    assert services["18"]["users"]["text"] == "skjult"
    assert services["18"]["share"]["value"] is None
    items = {i["key"]: i for i in k["items"]}
    assert items["hendelse_dato"]["filled"]["value"] == 100.0
    assert items["org_nr"]["filled"]["value"] is not None  # 7 of 70 events miss it
    assert items["org_nr"]["filled"]["value"] == 90.0
    rules = {x["rule_id"]: x for x in k["rules"]}
    assert rules["IPL-FID-INVALID"]["share"]["text"] == "<5"  # 3 notifications
    assert rules["IPL-TYPEID-KIND"]["severity"] == "advarsel"
    assert rules["IPL-TYPEID-KIND"]["share"]["value"] == pytest.approx(100 * 10 / 43, abs=0.1)
    assert "EPJ" in rules["IPL-FID-INVALID"]["text"]
    months = {m["month"]: m for m in k["months"]}
    assert set(months) == {"2018-11", "2018-12"}
    # 1 + 1 under a "<5" total would say there were at least 2: both months are hidden
    assert k["messages"]["text"] == "<5"
    assert {m["messages"]["text"] for m in months.values()} == {"skjult"}
    # four municipalities delivered: too few for a national median
    assert k["error_share_median"]["value"] is None


async def test_medians_appear_from_five_municipalities(
    client: httpx.AsyncClient, world: Sessions, settings: Settings
) -> None:
    for kommune in ("0211", "0213"):
        await add_register_message(world, kommune=kommune, users=[User(("15",)) for _ in range(10)])
    await refresh_once(world, settings)
    k = (await client.get("/api/v1/feedback/0301", params=YEAR)).json()
    # of the published figures only: Bergen's "<5" is not in it (40, 10, 10, 9, 8)
    assert k["accepted_median"]["kommuner"] == 5
    assert k["accepted_median"]["value"] == 10.0
    services = {s["tjeneste_type"]: s for s in k["services"]}
    assert services["15"]["median"]["value"] == 100.0


async def test_the_pages_render_with_etag_filters_and_sorting(
    client: httpx.AsyncClient, world: Sessions
) -> None:
    r = await client.get("/feedback", params=YEAR)
    assert r.status_code == 200
    html = r.text
    assert '<html lang="nb">' in html
    assert 'id="k0301"' in html
    assert ">Oslo</a>" in html
    assert "<script" not in html
    assert "http://" not in html.replace("http://www.w3.org", "")
    assert r.headers["cache-control"].startswith("public")
    etag = r.headers["etag"]
    again = await client.get("/feedback", params=YEAR, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["etag"] == etag
    only = (await client.get("/feedback", params={**YEAR, "fylke": "12"})).text
    assert 'id="k1201"' in only
    assert 'id="k0301"' not in only
    named = (await client.get("/feedback", params={**YEAR, "q": "bær"})).text
    assert 'id="k0219"' in named
    assert 'id="k0301"' not in named
    ranked = (
        await client.get("/feedback", params={**YEAR, "sort": "accepted", "order": "desc"})
    ).text
    assert ranked.index('id="k0301"') < ranked.index('id="k0220"') < ranked.index('id="k0219"')
    # a suppressed count sorts as "<5", not by its value: below 5, above the zeros
    assert ranked.index('id="k0219"') < ranked.index('id="k1201"') < ranked.index('id="k0101"')
    page = await client.get("/feedback/0301", params=YEAR)
    assert page.status_code == 200
    assert page.text.count("<svg") == 5
    assert "Helsetjenester i hjemmet" in page.text
    assert "regler-tabell" in page.text
    assert page.headers["etag"] != etag
    assert (await client.get("/feedback/9998", params=YEAR)).status_code == 404
    assert (await client.get("/feedback/abc")).status_code == 404
    assert (await client.get("/feedback", params={"year": "1800"})).status_code == 422


async def test_csv_has_the_same_published_cells(client: httpx.AsyncClient, world: Sessions) -> None:
    r = await client.get("/api/v1/feedback", params={**YEAR, "format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    lines = r.text.lstrip("\ufeff").splitlines()
    assert len(lines) == 423
    bergen = next(x for x in lines if ";1201;" in x).split(";")
    assert bergen[7] == "<5"
    detail = await client.get("/api/v1/feedback/0301", params={**YEAR, "format": "csv"})
    assert "brukergruppe;other;" in detail.text
    assert ";skjult;" in detail.text


async def test_a_rejected_message_counts_its_notifications_as_failed(
    sessions: Sessions, settings: Settings
) -> None:
    await add_register_message(sessions, kommune="4601", users=[User(("15",)) for _ in range(10)])
    rejected = await add_register_message(sessions, kommune="4601", apprec="2")
    async with sessions() as s:
        await s.execute(update(Message).where(Message.id == rejected).values(notification_count=6))
        await s.commit()
    await refresh_once(sessions, settings)
    async with sessions() as s:
        bergen = await s.get(FeedbackKommune, ("production", 2018, "4601"))
    assert bergen is not None
    assert (bergen.messages, bergen.readable) == (2, 1)
    assert (bergen.accepted, bergen.failed) == (10, 6)


async def test_the_refresh_is_incremental(
    client: httpx.AsyncClient, world: Sessions, settings: Settings
) -> None:
    async with world() as s:
        state = await s.get(FeedbackState, "main")
        assert state is not None
        generation, watermark = state.generation, state.watermark
        before = await s.get(FeedbackKommune, ("production", 2018, "0301"))
        assert before is not None
        oslo_refreshed = before.refreshed_at
    await add_register_message(world, kommune="1201", users=[User(("15",)) for _ in range(5)])
    # the lookback window re-reads the recent ones; only municipalities seen since are touched
    report = await refresh_once(world, settings)
    assert report.generation == generation + 1
    assert report.watermark > watermark
    assert report.touched_keys == {("production", "1201", 2018)}
    body = (await client.get("/api/v1/feedback", params=YEAR)).json()
    bergen = next(k for k in body["kommuner"] if k["kommune_nr"] == "1201")
    assert bergen["accepted"]["value"] == 8
    async with world() as s:
        after = await s.get(FeedbackKommune, ("production", 2018, "0301"))
        assert after is not None
        assert after.accepted == 40
        assert after.refreshed_at == oslo_refreshed  # not recomputed


def test_the_cli_refreshes(
    clean_database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KPR_DATABASE_URL", clean_database_url)
    monkeypatch.setenv("KPR_ENV", "test")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["feedback", "refresh", "--full"])
    assert result.exit_code == 0, result.output
    assert "feedback refreshed" in result.output


async def test_a_message_through_the_real_intake_reaches_the_feedback(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: Sessions,
    settings_with_pki: Settings,
) -> None:
    r = await post(intake, epj_message(pki))
    assert r.status_code == 200
    await refresh_once(sessions, settings_with_pki)
    year = str(datetime.now(UTC).year)
    params = {"year": year, "environment": "pilot"}
    k = (await intake.get("/api/v1/feedback/0301", params=params)).json()
    assert k["readable"] is True
    assert k["messages"]["text"] == "<5"
    assert k["services"], k
    page = await intake.get("/feedback/0301", params=params)
    assert page.status_code == 200
    await _privacy_scan(intake, sessions, [params], ["0301"])


GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
ELEVEN = re.compile(r"(?<![0-9])[0-9]{11}(?![0-9])")


async def _privacy_scan(
    client: httpx.AsyncClient,
    sessions: Sessions,
    selections: list[dict[str, str]],
    kommuner: list[str],
) -> int:
    """Every page, JSON and CSV for `selections`: no 11-digit number, no GUID, and none of
    the stored brukerNr, fid, GUIDs or message ids (history and register store alike)."""
    async with sessions() as s:
        secrets = set(await s.scalars(select(IplosBruker.bruker_nr)))
        secrets |= {PROTECTOR.open(x) for x in await s.scalars(select(IplosBruker.fid))}
        secrets |= set(await s.scalars(select(IplosNotification.guid)))
        secrets |= set(await s.scalars(select(IplosNotification.bruker_nr)))
        secrets |= {x for x in await s.scalars(select(Finding.bruker_nr)) if x}
        secrets |= {PROTECTOR.open(x) for x in await s.scalars(select(Finding.fid)) if x}
        secrets |= {x for x in await s.scalars(select(Finding.notification_guid)) if x}
        secrets |= {x for x in await s.scalars(select(Message.msghead_msg_id)) if x}
        secrets |= {x for x in await s.scalars(select(Message.ebms_message_id)) if x}
        # the register store: brukerNr, fid, every GUID of the events and notifications
        for column in (
            Hendelse.bruker_nr,
            Hendelse.pasient_guid,
            Hendelse.hendelse_guid,
            Notifikasjon.notifikasjon_guid,
            Episode.bruker_nr,
        ):
            secrets |= {x for x in await s.scalars(select(column)) if x}
        secrets |= {PROTECTOR.open(x) for x in await s.scalars(select(Hendelse.fid)) if x}
    assert secrets
    bodies: list[str] = []
    for params in selections:
        for path in ["/feedback", "/api/v1/feedback"]:
            bodies.append((await client.get(path, params=params)).text)
        bodies.append(
            (await client.get("/api/v1/feedback", params={**params, "format": "csv"})).text
        )
        for k in kommuner:
            for path in [f"/feedback/{k}", f"/api/v1/feedback/{k}"]:
                bodies.append((await client.get(path, params=params)).text)
            csv = await client.get(f"/api/v1/feedback/{k}", params={**params, "format": "csv"})
            bodies.append(csv.text)
    for body in bodies:
        assert not ELEVEN.search(body), ELEVEN.search(body)
        assert not GUID.search(body), GUID.search(body)
        for secret in secrets:
            assert secret not in body, "a stored identifier is published"
    return len(bodies)


async def test_nothing_published_identifies_a_person(
    client: httpx.AsyncClient, world: Sessions
) -> None:
    selections = [
        {"year": "2018", "environment": env} for env in ("production", "pilot", "test")
    ] + [{"year": "2019", "environment": "production"}]
    scanned = await _privacy_scan(
        client, world, selections, ["0301", "1201", "5001", "0219", "0220"]
    )
    assert scanned == 4 * 3 + 4 * 5 * 3
