"""The dev mail sink: in KPR_ENV=dev without SMTP the outbox lands in var/mail/ and is shown at
/dev/mail; elsewhere /dev/mail is 404."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.devsink import deliver_due
from app.main import create_app
from app.models import NotificationOutbox
from app.platform.settings import Env, Settings
from tests.integration.seed import add_message, auth, token

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def dev_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"env": Env.DEV, "mail_dir": tmp_path / "mail"})


@pytest.fixture
async def dev_client(dev_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(dev_settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
            yield c


async def test_the_outbox_is_delivered_to_files_and_listed(
    dev_client: httpx.AsyncClient, dev_settings: Settings, sessions: Sessions
) -> None:
    m = await add_message(sessions, email_to="innsending@kommune.example")
    operator = auth(await token(sessions, "ops", "operator"))
    assert (await dev_client.post(f"/api/v1/messages/{m.id}/notify", headers=operator)).is_success
    listed: list[dict[str, str]] = []
    for _ in range(100):  # the sink runs in the server every 2 s
        listed = (await dev_client.get("/dev/mail")).json()
        if listed:
            break
        await asyncio.sleep(0.1)
    assert len(listed) == 1
    assert listed[0]["to"] == "innsending@kommune.example"
    assert listed[0]["subject"].startswith("KPR: IPLOS-melding mottatt")
    one = await dev_client.get(f"/dev/mail/{listed[0]['name']}")
    assert one.json()["body"].startswith("Hei")
    assert (dev_settings.mail_dir / listed[0]["name"]).is_file()
    statuses: set[str] = set()
    for _ in range(100):  # the sink saves the file first, then marks the row sent
        async with sessions() as s:
            statuses = set(await s.scalars(select(NotificationOutbox.status)))
        if statuses == {"sent"}:
            break
        await asyncio.sleep(0.05)
    assert statuses == {"sent"}
    assert (await dev_client.get("/dev/mail/..%2F..%2Fetc%2Fpasswd")).status_code == 404


async def test_deliver_due_writes_one_file_per_email(sessions: Sessions, tmp_path: Path) -> None:
    m = await add_message(sessions)
    async with sessions() as s:
        for to in ("a@kommune.example", "b@kommune.example"):
            s.add(NotificationOutbox(message_id=m.id, recipient=to, subject="S", body="B"))
        await s.commit()
    assert await deliver_due(sessions, tmp_path / "mail", "kpr@example.org") == 2
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 2
    assert await deliver_due(sessions, tmp_path / "mail", "kpr@example.org") == 0


async def test_dev_mail_is_404_outside_dev(client: httpx.AsyncClient) -> None:
    r = await client.get("/dev/mail")
    assert r.status_code == 404
    assert r.json()["status"] == 404
