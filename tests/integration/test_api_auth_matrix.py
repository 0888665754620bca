"""Every /api/v1 endpoint × every kind of caller: the status code, and that no other
municipality's data appears in any body."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Party, PartyKommune
from tests.integration.seed import Fault, add_message, auth, revoked_token, token

# the auth matrix: each endpoint's SQL runs on both in its own tests
pytestmark = pytest.mark.databases("sqlite")

Sessions = async_sessionmaker[AsyncSession]

OSLO_MARKERS = ("01010112345", "B-OSLO-1", "g-oslo-1", "MSG-OSLO")
BERGEN_MARKERS = ("02020254321", "B-BERGEN-1", "g-bergen-1", "MSG-BERGEN")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {oslo} is Oslo's message id
    scope: str  # own: 404 for others | list: filtered | operator: 403 for municipalities
    # | public: 200 for anyone, with or without a token (the open feedback: aggregates only)
    # | token: 200 for any valid token | register: the register's loader only (403 for
    # operators too) | register+operator: the loader and operators
    # (the loader gets 403 everywhere but public, token and its own endpoints)
    ok: int = 200
    body: dict[str, object] | None = None


ENDPOINTS = [
    Endpoint("GET", "/api/v1/whoami", "token"),
    Endpoint("GET", "/api/v1/messages", "list"),
    Endpoint("GET", "/api/v1/messages/{oslo}", "own"),
    Endpoint("GET", "/api/v1/messages/{oslo}/findings", "own"),
    Endpoint("GET", "/api/v1/messages/{oslo}/apprec", "own"),
    Endpoint("GET", "/api/v1/messages/{oslo}/raw", "operator"),
    Endpoint("POST", "/api/v1/messages/{oslo}/notify", "operator", ok=202),
    # answered in the HTTP exchange: nothing queued to send again
    Endpoint("POST", "/api/v1/messages/{oslo}/replies/resend", "operator", ok=409),
    Endpoint("GET", "/api/v1/kommuner/0301/feilliste?year=2018", "own"),
    Endpoint("GET", "/api/v1/access-log", "operator"),
    Endpoint("GET", "/api/v1/coverage?year=2018&environment=pilot", "operator"),
    Endpoint("GET", "/api/v1/stats", "operator"),
    Endpoint("GET", "/api/v1/parties", "operator"),
    Endpoint("GET", "/api/v1/parties/8000001", "operator"),
    Endpoint(
        "POST",
        "/api/v1/parties",
        "operator",
        ok=201,
        body={"her_id": 8000099, "name": "Ny kommune", "kommuner": ["4601"]},
    ),
    Endpoint("PATCH", "/api/v1/parties/8000001", "operator", body={"name": "Oslo kommune"}),
    Endpoint("GET", "/api/v1/feedback?year=2018", "public"),
    Endpoint("GET", "/api/v1/feedback/0301?year=2018", "public"),
    Endpoint("GET", "/api/v1/register/notifications?environment=pilot", "register"),
    Endpoint(
        "POST",
        "/api/v1/register/confirm",
        "register",
        body={"environment": "pilot", "cursor": "WzAsMF0"},  # [0, 0]: the start
    ),
    Endpoint("GET", "/api/v1/register/position?environment=pilot", "register+operator"),
    Endpoint("GET", "/api/v1/revocation", "operator"),
]

CALLERS = ["none", "unknown", "revoked", "operator", "concerned", "other", "register"]


@pytest.fixture
async def world(sessions: Sessions) -> dict[str, object]:
    oslo = await add_message(
        sessions,
        msg_id="MSG-OSLO",
        raw=b"raw MSG-OSLO",
        faults=[Fault(guid="g-oslo-1", bruker_nr="B-OSLO-1", fid="01010112345")],
        email_to="innsending@oslo.example",
    )
    await add_message(
        sessions,
        kommune="4601",
        sender="8000002",
        msg_id="MSG-BERGEN",
        faults=[Fault(guid="g-bergen-1", bruker_nr="B-BERGEN-1", fid="02020254321")],
    )
    async with sessions() as s:
        party = Party(her_id=8000001, name="Oslo")
        party.kommuner = [PartyKommune(kommune_nr="0301")]
        s.add(party)
        await s.commit()
    return {
        "oslo_id": oslo.id,
        "none": {},
        "unknown": auth("kpr_unknown-token"),
        "revoked": auth(await revoked_token(sessions, "gone")),
        "operator": auth(await token(sessions, "ops", "operator")),
        "concerned": auth(await token(sessions, "oslo", "municipality:0301")),
        "other": auth(await token(sessions, "bergen", "municipality:4601")),
        "register": auth(await token(sessions, "loader", "register")),
    }


def _expected(endpoint: Endpoint, caller: str) -> int:
    if endpoint.scope == "public":
        return endpoint.ok
    if caller in ("none", "unknown", "revoked"):
        return 401
    if endpoint.scope == "token":
        return endpoint.ok
    if caller == "register":
        return endpoint.ok if endpoint.scope.startswith("register") else 403
    if caller == "operator":
        return 403 if endpoint.scope == "register" else endpoint.ok
    if endpoint.scope in ("operator", "register", "register+operator"):
        return 403
    if endpoint.scope == "own" and caller == "other":
        return 404
    return endpoint.ok


def test_the_table_names_every_api_endpoint(app: FastAPI) -> None:
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v1")
        for method in operations
    }
    table = {(e.method, e.path.split("?")[0].replace("{oslo}", "{message_id}")) for e in ENDPOINTS}
    table = {
        (
            m,
            p.replace("/kommuner/0301/", "/kommuner/{kommune_nr}/")
            .replace("/parties/8000001", "/parties/{her_id}")
            .replace("/feedback/0301", "/feedback/{kommune_nr}"),
        )
        for m, p in table
    }
    assert routes == table


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
async def test_every_caller_gets_its_status_and_nothing_of_others(
    client: httpx.AsyncClient, world: dict[str, object], endpoint: Endpoint
) -> None:
    path = endpoint.path.format(oslo=world["oslo_id"])
    for caller in CALLERS:
        headers = world[caller]
        assert isinstance(headers, dict)
        r = await client.request(endpoint.method, path, headers=headers, json=endpoint.body)
        assert r.status_code == _expected(endpoint, caller), (caller, r.text)
        if caller == "concerned":
            assert not any(m in r.text for m in BERGEN_MARKERS), (caller, r.text)
        if caller == "other":
            assert not any(m in r.text for m in OSLO_MARKERS), (caller, r.text)
        if r.status_code >= 400:
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["status"] == r.status_code
