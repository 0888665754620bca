"""Issue 20, hole 4, through the pages: what `/api/v1/feedback/{kommune}` and the overview
publish for a municipality, year and environment lets no suppressed cell be narrowed down
(the disclosure audit over the published JSON), for the reported case sent as messages and
for random municipalities' aggregates (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert

from app.feedback import disclosure
from app.feedback.audit import Publication, Status, Table, audit, bounds, share_value
from app.feedback.codes import DISTRICT_ITEMS, ITEMS, has_districts
from app.feedback.refresh import STATE, refresh_once
from app.feedback.tables import FeedbackCount, FeedbackKommune, FeedbackMedian, FeedbackState
from app.kommuner.lists import shipped_list
from app.platform.settings import Settings
from tests.budgets import examples
from tests.feedback_draws import Drawn, municipality
from tests.integration.seed import User, add_register_message
from tests.integration.test_feedback import Sessions, _privacy_scan

TEXTS = {"<5": Status.SMALL, "skjult": Status.HIDDEN, "–": Status.NONE}


class _Reader:
    """Turns published figures back into statuses, checking every shown value against the
    truth and every figure shown twice (a count in two tables) for the same status."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.pub = Publication({}, {})

    def _status(self, figure: dict[str, Any]) -> Status:
        status = TEXTS.get(figure["text"], Status.SHOWN)
        assert (figure["value"] is None) == (status is not Status.SHOWN), figure
        return status

    def count(self, var: str, figure: dict[str, Any]) -> None:
        status = self._status(figure)
        if status is Status.SHOWN:
            assert figure["value"] == self.table.values[var], (var, figure)
        assert self.pub.counts.setdefault(var, status) is status, var

    def share(self, key: str, figure: dict[str, Any]) -> None:
        status = self._status(figure)
        if status is Status.SHOWN:
            assert figure["value"] == share_value(self.table, self.table.shares[key]), key
        assert self.pub.shares.setdefault(key, status) is status, key

    def done(self) -> Publication:
        assert set(self.pub.counts) == set(self.table.counts)
        assert set(self.pub.shares) == set(self.table.shares)
        return self.pub


def published_users(k: dict[str, Any], users: Table) -> Publication:
    """The statuses the JSON of one municipality's page shows for its users."""
    u = _Reader(users)
    u.count("U", k["users"])
    for g in k["user_groups"]:
        u.count(f"g:{g['key']}", g["users"])
        u.share(f"g:{g['key']}:share", g["share"])
    for s in k["services"]:
        u.count(f"t:{s['tjeneste_type']}", s["users"])
        u.share(f"t:{s['tjeneste_type']}:share", s["share"])
        u.count(f"s:{s['tjeneste_type']}", s["stopped"])
    return u.done()


def published_messages(k: dict[str, Any], messages: Table) -> Publication:
    """The statuses the JSON of one municipality's page shows for its messages."""
    m = _Reader(messages)
    m.count("M", k["messages"])
    m.count("A", k["accepted"])
    m.share("error_share", k["error_share"])
    for month in k["months"]:
        m.count(f"m:{month['month']}", month["messages"])
    for item in k["items"]:
        m.share(f"f:{item['key']}:share", item["filled"])
        m.count(disclosure.item_base(messages, item["key"]), item["base"])
    for rule in k["rules"]:
        kind = "rule_error" if rule["severity"] == "feil" else "rule_warn"
        m.share(f"r:{kind}:{rule['rule_id']}", rule["share"])
    return m.done()


def tables_of(kommune: str, d: Drawn) -> tuple[Table, Table]:
    """The page's two parts as the truth has them (built afresh: not the remembered ones)."""
    users = d.counts
    months = {key: v for (kind, key), (v, _t) in d.counts.items() if kind == "month"}
    items = {
        key: d.counts.get(("item", key), (0, 0))
        for key in ITEMS
        if key not in DISTRICT_ITEMS or has_districts(kommune)
    }
    rules = {k: v for k, v in d.counts.items() if k[0] in ("rule_error", "rule_warn")}
    users_table = disclosure.users_table(
        users.get(("users", "total"), (0, 0))[0],
        {g: users.get(("users", g), (0, 0))[0] for g in ("long_term", "home", "other")},
        {key: v for (kind, key), (v, _t) in users.items() if kind == "tjeneste"},
        {key: v for (kind, key), (v, _t) in users.items() if kind == "tjeneste_stopp"},
    )
    messages_table = disclosure.messages_table(
        d.messages, d.accepted, d.failed, d.messages > 0, months, items, rules
    )
    return users_table, messages_table


async def check_published(
    client: httpx.AsyncClient, kommune: str, params: dict[str, str], d: Drawn
) -> tuple[Table, Publication]:
    """The page's JSON and the overview's row pass the audit; returns the users part."""
    k = (await client.get(f"/api/v1/feedback/{kommune}", params=params)).json()
    users, messages = tables_of(kommune, d)
    upub, mpub = published_users(k, users), published_messages(k, messages)
    assert audit(users, upub) == []
    assert audit(messages, mpub) == []
    o = (await client.get("/api/v1/feedback", params=params)).json()
    [row] = [r for r in o["kommuner"] if r["kommune_nr"] == kommune]
    for name in ("messages", "accepted", "error_share"):
        assert row[name] == k[name], name  # one decision for the page and the overview
    return users, upub


# --- the reported case, sent as messages --------------------------------------------------


async def test_the_reported_case_no_longer_gives_the_home_group_away(
    client: httpx.AsyncClient, sessions: Sessions, settings: Settings
) -> None:
    """20 users, 17 with service type 21 (one also with type 4), 3 with type 15 only: the
    page showed users 20, long-term "skjult", home "<5", other 0 and service 21 = 17."""
    users = [User(("21", "4"))] + [User(("21",)) for _ in range(16)]
    users += [User(("15",)) for _ in range(3)]
    await add_register_message(sessions, kommune="0301", users=users)
    await refresh_once(sessions, settings)
    k = (await client.get("/api/v1/feedback/0301", params={"year": "2018"})).json()
    services = {s["tjeneste_type"]: s for s in k["services"]}
    groups = {g["key"]: g for g in k["user_groups"]}
    assert groups["home"]["users"]["value"] is None
    assert None in (k["users"]["value"], services["21"]["users"]["value"])  # not 20 and 17
    table = disclosure.users_table(
        20, {"long_term": 17, "home": 3, "other": 0}, {"21": 17, "4": 1, "15": 3}, {}
    )
    pub = published_users(k, table)
    assert audit(table, pub) == []
    low, high, _ = bounds(table, pub, {"home": {"g:home": 1.0}})["home"]
    assert low <= 1
    assert high >= 4  # the reader knows no more than "<5" would say
    page = await client.get("/feedback/0301", params={"year": "2018"})
    assert page.status_code == 200
    assert ">skjult<" in page.text
    await _privacy_scan(client, sessions, [{"year": "2018"}], ["0301"])  # no personal data


# --- random municipalities, years and environments ------------------------------------------

_generations = itertools.count(1)


async def _seed(sessions: Sessions, environment: str, year: int, kommune: str, d: Drawn) -> None:
    async with sessions() as s:
        for model in (FeedbackCount, FeedbackKommune, FeedbackMedian, FeedbackState):
            await s.execute(delete(model))
        now = datetime.now(UTC)
        if d.messages:
            s.add(
                FeedbackKommune(
                    environment=environment,
                    year=year,
                    kommune_nr=kommune,
                    messages=d.messages,
                    readable=d.messages,
                    first_readable_at=datetime(year, 1, 10, 12, tzinfo=UTC),
                    last_readable_at=datetime(year, 1, 10, 12, tzinfo=UTC),
                    accepted=d.accepted,
                    failed=d.failed,
                    top_rule=None,
                )
            )
            rows = [
                {
                    "environment": environment,
                    "year": year,
                    "kommune_nr": kommune,
                    "kind": kind,
                    "key": key,
                    "value": value,
                    "total": total,
                }
                for (kind, key), (value, total) in d.counts.items()
            ]
            if rows:
                await s.execute(insert(FeedbackCount), rows)
        s.add(
            FeedbackState(name=STATE, watermark=0, generation=next(_generations), refreshed_at=now)
        )
        await s.commit()


@settings(
    max_examples=examples(40, floor=5),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    d=municipality(),
    year=st.sampled_from([2017, 2018, 2019, 2020]),
    environment=st.sampled_from(["production", "pilot", "test"]),
    pick=st.integers(0, 10_000),
)
async def test_no_published_page_lets_a_suppressed_cell_be_narrowed_down(
    client: httpx.AsyncClient,
    sessions: Sessions,
    d: Drawn,
    year: int,
    environment: str,
    pick: int,
) -> None:
    kommuner = shipped_list(year)
    kommune = kommuner[pick % len(kommuner)].kommune_nr
    await _seed(sessions, environment, year, kommune, d)
    params = {"year": str(year), "environment": environment}
    await check_published(client, kommune, params, d)
