"""Retention on SQLite and PostgreSQL: raw bodies, person identifiers in findings and the
IPLOS history go when due; the audit skeleton stays (a resend still gets its reply byte for
byte), and the access log says what was removed."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.devpki import DevPki
from app.dev.sample import build_sample, wrap_in_msghead
from app.main import create_app
from app.models import AccessLog, Finding, IplosNotification, Message, Receipt
from app.platform.settings import Settings
from app.retention.policy import apply_retention
from tests.integration.messages import epj_message, msghead, post

OLD_DAYS = 1200  # older than every default


async def _message(s: AsyncSession, body: bytes) -> Message:
    digest = hashlib.sha256(body).hexdigest()
    query = select(Message).where(Message.sha256 == digest).order_by(Message.id).limit(1)
    return (await s.scalars(query.execution_options(populate_existing=True))).one()


async def _raw(s: AsyncSession, message_id: int) -> bytes | None:
    return await s.scalar(select(Message.raw).where(Message.id == message_id))


async def _subjects(s: AsyncSession, message_id: int) -> int:
    query = select(func.count()).where(
        Finding.message_id == message_id,
        (Finding.bruker_nr.is_not(None)) | (Finding.fid.is_not(None)),
    )
    return int(await s.scalar(query) or 0)


async def _count(s: AsyncSession, model: type[object], message_id: int) -> int:
    column = model.message_id  # type: ignore[attr-defined]
    return int(await s.scalar(select(func.count()).where(column == message_id)) or 0)


async def test_retention_removes_what_is_due_and_keeps_the_audit_skeleton(
    intake: httpx.AsyncClient,
    pki: DevPki,
    settings_with_pki: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    old = epj_message(pki, msghead(5, faults=("IPL-FID-INVALID",)))
    old_reply = await post(intake, old)
    later = build_sample(5, "0301", ("IPL-FID-INVALID",), seed=7, start_lopenr=100)
    new = epj_message(
        pki,
        wrap_in_msghead(
            later, 8000001, 131725, str(uuid.uuid4()), datetime.now(UTC).replace(microsecond=0)
        ),
    )
    await post(intake, new)
    now = datetime.now(UTC)
    async with sessions() as s:
        old_msg, new_msg = await _message(s, old.body), await _message(s, new.body)
        await s.execute(
            update(Message)
            .where(Message.id == old_msg.id)
            .values(received_at=now - timedelta(days=OLD_DAYS))
        )
        await s.commit()
        # What retention is to remove is there to begin with.
        assert await _raw(s, old_msg.id) is not None
        assert await _subjects(s, old_msg.id) > 0
        assert await _count(s, IplosNotification, old_msg.id) > 0
        findings_before = await _count(s, Finding, old_msg.id)

    report = await apply_retention(sessions, settings_with_pki, now)
    assert report.summary() == {
        "raw": 1,
        "apprec_subjects": 1,
        "finding_subjects": 1,
        "register_identifiers": 0,
        "history": 1,
        "register": 1,
    }

    async with sessions() as s:
        assert await _raw(s, old_msg.id) is None
        stored = await _message(s, old.body)
        assert stored.raw_ref is not None
        assert stored.raw_ref.startswith("removed by retention")
        assert stored.status == old_msg.status
        assert await _subjects(s, old_msg.id) == 0
        assert await _count(s, Finding, old_msg.id) == findings_before
        assert await _count(s, IplosNotification, old_msg.id) == 0
        assert await _count(s, Receipt, old_msg.id) == 1
        # The newer message is untouched.
        assert await _raw(s, new_msg.id) is not None
        assert await _subjects(s, new_msg.id) > 0
        assert await _count(s, IplosNotification, new_msg.id) > 0
        logged = list(await s.scalars(select(AccessLog).where(AccessLog.actor == "retention")))
    assert sorted(a.action for a in logged) == [
        "retention.apprec_subjects",
        "retention.finding_subjects",
        "retention.history",
        "retention.raw",
        "retention.register",
    ]
    assert all(a.message_id == old_msg.id for a in logged)

    # The skeleton answers a resend with the very reply it got.
    again = await post(intake, old)
    assert again.content == old_reply.content

    # A second run finds nothing and logs nothing.
    second = await apply_retention(sessions, settings_with_pki, now)
    assert second.summary() == {
        "raw": 0,
        "apprec_subjects": 0,
        "finding_subjects": 0,
        "register_identifiers": 0,
        "history": 0,
        "register": 0,
    }
    async with sessions() as s:
        count = await s.scalar(
            select(func.count()).select_from(AccessLog).where(AccessLog.actor == "retention")
        )
    assert count == 5


async def test_the_server_applies_retention_by_itself(
    settings_with_pki: Settings,
    demo_party: int,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    built = epj_message(pki)
    app = create_app(settings_with_pki.model_copy(update={"retention_interval_hours": 0.0005}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
            await post(c, built)
        async with sessions() as s:
            message = await _message(s, built.body)
            await s.execute(
                update(Message)
                .where(Message.id == message.id)
                .values(received_at=datetime.now(UTC) - timedelta(days=OLD_DAYS))
            )
            await s.commit()
        deadline = time.monotonic() + 60.0
        while True:
            async with sessions() as s:
                if await _raw(s, message.id) is None:
                    break
            assert time.monotonic() < deadline, "the in-server retention never ran"
            await asyncio.sleep(0.2)
