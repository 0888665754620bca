"""The error list from real messages: sent through the intake, read back through the API."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.devpki import DevPki
from app.dev.sample import build_sample
from tests.integration.seed import auth, token
from tests.integration.test_intake_history import guid, send

Sessions = async_sessionmaker[AsyncSession]


async def test_a_failing_row_resent_correctly_is_corrected_in_the_list(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions
) -> None:
    # a dropped row (typeID 4: handling 2) sent again with the same GUID
    broken = build_sample(3, "0301", ("IPL-TYPEID-CODE",), seed=7)
    fixed = build_sample(3, "0301", (), seed=7)
    first = await send(intake, pki, sessions, broken)
    assert first.status == "3"
    oslo = auth(await token(sessions, "oslo", "municipality:0301"))
    url = "/api/v1/kommuner/0301/feilliste"
    params = {"environment": "pilot", "filter": "all"}
    before = (await intake.get(url, headers=oslo, params=params)).json()
    assert [(r["rule_id"], r["corrected"]) for r in before["rows"]] == [("IPL-TYPEID-CODE", False)]
    failing = before["rows"][0]["notification_guid"]
    assert failing in {guid(broken, i) for i in range(3)}
    assert before["rows"][0]["bruker_nr"]
    assert before["rows"][0]["fid"]
    assert before["rows"][0]["lopenr"] == 3  # the sample's fault is in its last notification
    second = await send(intake, pki, sessions, fixed)
    assert second.status == "1", second.ots
    after = (await intake.get(url, headers=oslo, params=params)).json()
    assert [(r["notification_guid"], r["corrected"]) for r in after["rows"]] == [(failing, True)]
    still_open = await intake.get(url, headers=oslo, params={"environment": "pilot"})
    assert still_open.json()["rows"] == []
