"""Bearer tokens: roles, revocation, 401 and 403."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import repository as tokens
from app.auth import tokens as token_rules
from app.models import ApiToken

# tokens and roles: no SQL that differs between the databases
pytestmark = pytest.mark.databases("sqlite")


async def _token(sessions: async_sessionmaker[AsyncSession], name: str, role: str) -> str:
    async with sessions() as s:
        _, plaintext = await tokens.create_token(s, name, role)
        await s.commit()
    return plaintext


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_missing_token_is_401(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/whoami")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"] == "Unauthorized"


async def test_wrong_token_is_401(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _token(sessions, "op", "operator")
    r = await client.get("/api/v1/whoami", headers=_auth("kpr_not-a-real-token"))
    assert r.status_code == 401


async def test_operator_token_is_accepted(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    t = await _token(sessions, "op", "operator")
    r = await client.get("/api/v1/whoami", headers=_auth(t))
    assert r.status_code == 200
    assert r.json() == {"name": "op", "role": "operator", "kommune_nr": None}


async def test_municipality_token_carries_its_kommune(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    t = await _token(sessions, "oslo", "municipality:0301")
    r = await client.get("/api/v1/whoami", headers=_auth(t))
    assert r.json() == {"name": "oslo", "role": "municipality", "kommune_nr": "0301"}


async def test_municipality_is_forbidden_operator_endpoints(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    t = await _token(sessions, "oslo", "municipality:0301")
    assert (await client.get("/api/v1/parties", headers=_auth(t))).status_code == 403


async def test_revoked_token_is_401(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    t = await _token(sessions, "op", "operator")
    async with sessions() as s:
        assert await tokens.revoke_token(s, "op")
        await s.commit()
    assert (await client.get("/api/v1/whoami", headers=_auth(t))).status_code == 401


async def test_tokens_are_stored_hashed(sessions: async_sessionmaker[AsyncSession]) -> None:
    t = await _token(sessions, "op", "operator")
    async with sessions() as s:
        row = (await s.scalars(select(ApiToken))).one()
    assert row.token_hash == token_rules.hash_token(t)
    assert t not in row.token_hash


@pytest.mark.parametrize("role", ["admin", "municipality:301", "municipality:", "operator:0301"])
def test_unknown_roles_are_refused(role: str) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        token_rules.parse_role(role)


async def test_party_api_refuses_out_of_range_her_ids_and_duplicate_cpa_ids(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Found by schemathesis against the real server (tests/e2e/test_openapi.py).
    headers = _auth(await _token(sessions, "op", "operator"))
    assert (await client.get(f"/api/v1/parties/{2**63}", headers=headers)).status_code == 422
    body = {"her_id": 8000009, "name": "X", "cpa_ids": ["a", "a"]}
    r = await client.post("/api/v1/parties", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert [c["cpa_id"] for c in r.json()["cpas"]] == ["a"]
    again = await client.post("/api/v1/parties", json=body, headers=headers)
    assert again.status_code == 409


async def test_a_token_records_when_it_was_last_used(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    token = await _token(sessions, "ops", "operator")
    async with sessions() as s:
        assert (await s.scalar(select(ApiToken.last_used_at))) is None
    assert (await client.get("/api/v1/whoami", headers=_auth(token))).status_code == 200
    async with sessions() as s:
        first = await s.scalar(select(ApiToken.last_used_at))
    assert first is not None
    # within the resolution a second use does not write again
    assert (await client.get("/api/v1/whoami", headers=_auth(token))).status_code == 200
    async with sessions() as s:
        assert await s.scalar(select(ApiToken.last_used_at)) == first
    async with sessions() as s:
        found = await tokens.authenticate(
            s,
            token,
            now=first + token_rules.LAST_USED_RESOLUTION + token_rules.LAST_USED_RESOLUTION,
        )
        assert found is not None
        row = await s.scalar(select(ApiToken))
        assert row is not None
        assert row.last_used_at is not None
        assert row.last_used_at > first
