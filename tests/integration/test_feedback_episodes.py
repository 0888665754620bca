"""The open feedback from the register store (issue 19, item 6) on SQLite and PostgreSQL:
users per service type and long-term stays against living at home on 31 December, from the
service episodes (a correction counts as the corrected type, an annulled service and one
ended before the year's end do not count, a temporary stop still does and is shown apart),
typeID and bydel completeness from the `hendelse` rows, and the disclosure rules over all
of it."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.devpki import DevPki
from app.feedback.refresh import YEAR_END_KINDS, refresh_once
from app.feedback.tables import FeedbackCount
from app.platform.settings import Settings
from tests.integration.seed import User, add_register_message
from tests.integration.test_feedback import _privacy_scan
from tests.integration.test_intake_history import send
from tests.register_messages import EMPTY_GUID, Event, Notif, Person, melding_xml, person

Sessions = async_sessionmaker[AsyncSession]
Counts = dict[tuple[str, str], tuple[int, int]]


@pytest.fixture(autouse=True)
def _no_background_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPR_FEEDBACK_REFRESH_SECONDS", "0")


@pytest.fixture
def kpr(environments: httpx.AsyncClient) -> httpx.AsyncClient:
    """An intake with a pilot, a test and a production address."""
    return environments


async def counts(sessions: Sessions, environment: str, year: int, kommune: str) -> Counts:
    """The aggregates the refresh stored for one municipality (before any suppression)."""
    async with sessions() as s:
        rows = await s.scalars(
            select(FeedbackCount).where(
                FeedbackCount.environment == environment,
                FeedbackCount.year == year,
                FeedbackCount.kommune_nr == kommune,
            )
        )
        return {(c.kind, c.key): (c.value, c.total) for c in rows}


def of_kind(found: Counts, kind: str) -> dict[str, int]:
    return {key: value for (k, key), (value, _t) in found.items() if k == kind and value}


def chained(notifications: list[Notif]) -> list[Notif]:
    """Each notification's notifikasjonForrigeGUID naming the one before it (no warning)."""
    out: list[Notif] = []
    for n in notifications:
        out.append(replace(n, forrige=out[-1].guid if out else EMPTY_GUID))
    return out


async def test_episodes_through_the_intake_count_as_the_register_has_them(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, settings_with_pki: Settings
) -> None:
    """Pilot messages received now count for this reporting year, whose end is 31 December
    of this year; every event below is dated last year."""
    year = datetime.now(UTC).year
    d1, d2, d3 = (f"{year - 1}-{md}" for md in ("02-01", "05-01", "06-01"))
    rng = random.Random(19)
    p1 = Person(**{**person(rng, "FB-1").__dict__, "bydel": "030101"})
    p2, p3, p4, p6 = (person(rng, f"FB-{i}") for i in (2, 3, 4, 6))
    p5 = Person(**{**person(rng, "FB-5", "2").__dict__, "bydel": "030105"})
    p7 = Person(**{**person(rng, "FB-7", "9").__dict__, "bydel": "3A"})  # not 2-6 digits
    n1 = Notif(1, p1, (Event("TjenesteStart", "T1", d1, tjeneste_type="18"),))
    n2 = Notif(2, p2, (Event("TjenesteStart", "T2", d1, tjeneste_type="15"),))
    n3 = Notif(3, p3, (Event("TjenesteStart", "T3", d1, tjeneste_type="15"),))
    n4 = Notif(4, p4, (Event("TjenesteStart", "T4", d1, tjeneste_type="1"),))
    stop4 = Notif(
        5, p4, (Event("MidlertidigStoppFra", "T4", d2, tjeneste_type="1", stopp_id="S4"),)
    )
    n5 = Notif(6, p5, (Event("TjenesteStart", "T5", d1, tjeneste_type="1"),))
    stop5 = Notif(
        7, p5, (Event("MidlertidigStoppFra", "T5", d2, tjeneste_type="1", stopp_id="S5"),)
    )
    back5 = Notif(
        8, p5, (Event("MidlertidigStoppTil", "T5", d3, tjeneste_type="1", stopp_id="S5"),)
    )
    only_end6 = Notif(9, p6, (Event("TjenesteSlutt", "T6", d3, tjeneste_type="15"),))
    n7 = Notif(10, p7, (Event("TjenesteStart", "T7", d1, tjeneste_type="4"),))
    # the correction makes P1's stay long-term; P2's service is annulled; P3's ends
    fix1 = Notif(
        11, p1, (Event("TjenesteStart", "T1", d1, tjeneste_type="21"),), status="M", ref=n1.guid
    )
    annul2 = Notif(12, p2, n2.events, status="C", ref=n2.guid)
    end3 = Notif(13, p3, (Event("TjenesteSlutt", "T3", d3, tjeneste_type="15"),))
    sent = chained([n1, n2, n3, n4, stop4, n5, stop5, back5, only_end6, n7, fix1, annul2, end3])
    for notifications in (sent[:10], sent[10:]):
        answer = await send(kpr, pki, sessions, melding_xml(notifications))
        assert answer.status == "1", answer.ots
    await refresh_once(sessions, settings_with_pki)

    found = await counts(sessions, "pilot", year, "0301")
    # 18 was corrected to 21; 15: annulled (P2), ended (P3), never started (P6)
    assert of_kind(found, "tjeneste") == {"21": 1, "1": 2, "4": 1}
    assert of_kind(found, "tjeneste_stopp") == {"1": 1}  # P4's stop goes on; P5's ended
    assert found[("users", "total")][0] == 4
    assert (found[("users", "long_term")][0], found[("users", "home")][0]) == (1, 3)
    assert found[("users", "other")][0] == 0
    # 13 events: every typeID a valid code; bydel 2-6 digits on P1's two and P5's three
    assert found[("item", "type_id")] == (13, 13)
    assert found[("item", "bydel")] == (5, 13)

    k = (
        await kpr.get("/api/v1/feedback/0301", params={"year": year, "environment": "pilot"})
    ).json()
    assert k["users_on"] == f"{year}-12-31"
    # 4 users of whom 2 have type 1: a "<5" total would put the users without it at 0 to 3
    assert k["users"]["text"] == "skjult"
    assert {s["tjeneste_type"] for s in k["services"]} == {"1", "4", "21"}
    items = {i["key"]: i for i in k["items"]}
    assert items["type_id"]["filled"]["value"] == 100.0
    assert items["bydel"]["filled"]["value"] == pytest.approx(100 * 5 / 13, abs=0.1)
    await _privacy_scan(kpr, sessions, [{"year": str(year), "environment": "pilot"}], ["0301"])


# a production year seeded straight into the history and the register store (2018's window)
YEAR_END_USERS = (
    # 6 users of 15 all year; 2 sent typeID 4 (a row kept with its finding)
    [User(("15",), bydel="030102") for _ in range(4)]
    + [User(("15",), bydel="030102", type_id="4") for _ in range(2)]
    # 5 ended on 31 December: not users at the year's end; 5 ended the next day: users
    + [User(("15",), end=date(2018, 12, 31)) for _ in range(5)]
    + [User(("15",), end=date(2019, 1, 1), bydel="3A") for _ in range(5)]
    # 5 long-term stays that begin on 1 January 2019, 5 known only by their end
    + [User(("21",), start=date(2019, 1, 1)) for _ in range(5)]
    + [User(("21",), start=None, end=date(2018, 11, 1)) for _ in range(5)]
    # 8 users of service 1: 7 on a temporary stop at the year's end
    + [User(("1",), stop=date(2018, 12, 1), bydel="030101") for _ in range(7)]
    + [User(("1",))]
)


async def test_users_at_the_years_end_with_their_suppression(
    client: httpx.AsyncClient, sessions: Sessions, settings: Settings
) -> None:
    await add_register_message(sessions, kommune="0301", users=YEAR_END_USERS)
    await add_register_message(sessions, kommune="0219", users=[User(("15",)) for _ in range(6)])
    await refresh_once(sessions, settings)

    found = await counts(sessions, "production", 2018, "0301")
    assert of_kind(found, "tjeneste") == {"15": 11, "1": 8}
    assert of_kind(found, "tjeneste_stopp") == {"1": 7}
    assert found[("users", "total")][0] == 19
    assert found[("users", "home")][0] == 19
    # 51 events: 6 + 10 + 10 + 5 + 5 + 14 + 1
    assert found[("item", "type_id")] == (49, 51)
    assert found[("item", "bydel")] == (6 + 14, 51)
    bærum = await counts(sessions, "production", 2018, "0219")
    assert bærum[("item", "type_id")] == (6, 6)
    assert ("item", "bydel") not in bærum  # Bærum has no districts

    k = (await client.get("/api/v1/feedback/0301", params={"year": "2018"})).json()
    assert k["users"]["value"] == 19
    services = {s["tjeneste_type"]: s for s in k["services"]}
    assert services["15"]["users"]["value"] == 11
    assert services["15"]["stopped"]["value"] == 0
    assert services["1"]["users"]["value"] == 8
    # 7 of 8 on a stop: the one receiving the service would follow by subtraction
    assert services["1"]["stopped"] == {"value": None, "text": "skjult", "suppressed": True}
    groups = {g["key"]: g for g in k["user_groups"]}
    assert groups["home"]["users"]["value"] == 19
    items = {i["key"]: i for i in k["items"]}
    # 49 of 51: the complement, 2 events, is a small count
    assert items["type_id"]["filled"] == {"value": None, "text": "<5", "suppressed": True}
    assert items["bydel"]["filled"]["value"] == pytest.approx(100 * 20 / 51, abs=0.1)
    b = (await client.get("/api/v1/feedback/0219", params={"year": "2018"})).json()
    assert "bydel" not in {i["key"] for i in b["items"]}
    assert {i["key"]: i for i in b["items"]}["type_id"]["filled"]["value"] == 100.0
    page = await client.get("/feedback/0301", params={"year": "2018"})
    assert "31.12.2018" in page.text
    assert "Av dem i midlertidig stopp" in page.text
    csv = (await client.get("/api/v1/feedback/0301", params={"year": "2018", "format": "csv"})).text
    assert "tjenestetype_midlertidig_stopp;1;" in csv
    assert "utfylling;bydel;" in csv
    await _privacy_scan(client, sessions, [{"year": "2018"}], ["0301", "0219"])


async def test_small_stopped_counts_and_suppressed_services_hide_the_stops(
    client: httpx.AsyncClient, sessions: Sessions, settings: Settings
) -> None:
    stop = date(2018, 11, 1)
    users = (
        [User(("15",), stop=stop) for _ in range(6)]  # 12 users of 15, 6 on a stop
        + [User(("15",)) for _ in range(6)]
        + [User(("1",), stop=stop) for _ in range(3)]  # 3 users of 1, all on a stop
        + [User(("4",), stop=stop) for _ in range(2)]  # 13 users of 4, 2 on a stop
        + [User(("4",)) for _ in range(11)]
    )
    await add_register_message(sessions, kommune="0301", users=users)
    await refresh_once(sessions, settings)
    k = (await client.get("/api/v1/feedback/0301", params={"year": "2018"})).json()
    assert k["users"]["value"] == 28
    services = {s["tjeneste_type"]: s for s in k["services"]}
    # every one of the 28 at home has a home service: with 12 of 15 and 13 of 4 shown, type
    # 1 has at least 3, so "<5" would say 3 or 4: it reads "skjult", and the 12 goes too
    assert services["1"]["users"]["text"] == "skjult"
    assert services["1"]["stopped"]["text"] == "<5"
    # all 28 live at home, so the three home types cover them: with 13 and 28 shown, the 12
    # of type 15 would give the 3 back; hidden, it lies from 11 to 28, and its 6 on a stop
    # (a lower bound) tell no more
    assert services["15"]["users"]["text"] == "skjult"
    assert services["15"]["stopped"]["value"] == 6
    assert services["4"]["users"]["value"] == 13
    assert services["4"]["stopped"]["text"] == "<5"


async def test_a_late_message_changes_the_earlier_years_end(
    sessions: Sessions, settings: Settings
) -> None:
    """The year's end reads the episodes as they are now: a TjenesteSlutt dated in 2018 but
    received in June 2019 (2019's window only) takes the user out of 2018's figures at the
    next incremental refresh; the rest of 2018's figures stays as its window's messages
    gave it."""
    late = User(("15",), bruker_nr="BR-LATE")
    await add_register_message(sessions, kommune="0301", users=[late, *[User(("15",))] * 5])
    await refresh_once(sessions, settings)
    before = await counts(sessions, "production", 2018, "0301")
    assert of_kind(before, "tjeneste") == {"15": 6}
    ended = User(("15",), start=None, end=date(2018, 12, 15), bruker_nr="BR-LATE")
    await add_register_message(
        sessions, kommune="0301", received_at=datetime(2019, 6, 1, 10, tzinfo=UTC), users=[ended]
    )
    report = await refresh_once(sessions, settings)
    assert report.touched_keys == {("production", "0301", 2019)}
    assert report.year_end_keys == {("production", "0301", 2018)}  # only its users recounted
    after = await counts(sessions, "production", 2018, "0301")
    assert of_kind(after, "tjeneste") == {"15": 5}
    assert after[("users", "total")][0] == 5
    rest = {key for key in before if key[0] not in YEAR_END_KINDS}
    assert ("item", "type_id") in rest
    assert {k: after[k] for k in rest} == {k: before[k] for k in rest}
    assert of_kind(await counts(sessions, "production", 2019, "0301"), "tjeneste") == {"15": 5}
