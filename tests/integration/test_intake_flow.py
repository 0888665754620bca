"""The whole intake through HTTP: a good message gets a signed Ack and an OK AppRec."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import undefer

from app.apprec.parse import parse_apprec
from app.dev.devpki import DevPki
from app.models import Finding as FindingRow
from app.models import Message, MessageEvent, NotificationOutbox, Receipt
from tests.integration.messages import assert_signed_ok_reply, epj_message, post, reply_of


async def test_valid_message_gets_signed_ack_and_ok_apprec(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    built = epj_message(pki)
    r = await post(intake, built)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("multipart/related")
    reply = reply_of(pki, r)
    assert_signed_ok_reply(reply, built.message_id)
    async with sessions() as s:
        message = (await s.scalars(select(Message).options(undefer(Message.raw)))).one()
        assert message.status == "OK"
        assert message.raw == r.request.content
        assert message.kommune_nr == "0301"
        receipt = (await s.scalars(select(Receipt).options(undefer(Receipt.body)))).one()
        assert receipt.body == r.content
        kinds = [e.kind for e in await s.scalars(select(MessageEvent).order_by(MessageEvent.id))]
        assert kinds[:2] == ["received", "parsed"]
        assert "decrypted" in kinds
        assert "validated" in kinds
        outbox = list(await s.scalars(select(NotificationOutbox)))
        assert outbox
        assert all("fid" not in o.body for o in outbox)


async def test_metrics_count_messages_by_outcome_and_outbox_depth(
    intake: httpx.AsyncClient, pki: DevPki
) -> None:
    await post(intake, epj_message(pki))
    text = (await intake.get("/metrics")).text
    assert 'kpr_messages_total{environment="pilot",outcome="OK"} 1.0' in text
    depth = next(
        line for line in text.splitlines() if line.startswith("kpr_notification_outbox_depth ")
    )
    assert float(depth.split()[1]) >= 1
    assert "kpr_intake_seconds_count 1.0" in text


async def test_a_pilot_message_is_never_judged_for_timeliness(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # The sample reports events of 2018, long past its deadlines: the pilot is no report.
    r = await post(intake, epj_message(pki))
    reply = reply_of(pki, r)
    assert reply.apprec is not None
    apprec = parse_apprec(reply.apprec)
    assert (apprec.status, apprec.errors) == ("1", ())
    async with sessions() as s:
        rules = [f.rule_id for f in await s.scalars(select(FindingRow))]
    assert rules == []


async def test_without_cpa_the_action_must_be_the_msghead_type(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    r = await post(intake, epj_message(pki, action="SOMETHING_ELSE"))
    reply = reply_of(pki, r)
    assert reply.header is not None
    assert reply.header.action == "MessageError"
    (error,) = reply.header.errors
    assert error.error_code == "ValueNotRecognized"
    assert error.description is not None
    assert "EBMS-SERVICE-NOT-ALLOWED" in error.description
    assert "MsgInfo/Type" in error.description
    async with sessions() as s:
        message = (await s.scalars(select(Message))).one()
    assert message.status == "MESSAGE_ERROR"


async def test_an_internal_error_is_answered_and_stored_as_a_finished_failure(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.intake import stages

    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in a step")

    monkeypatch.setattr(stages, "read_business", bug)  # stands in for any bug in a step
    reply = reply_of(pki, await post(intake, epj_message(pki)))
    assert reply.header is not None
    assert reply.header.action == "MessageError"
    assert [e.error_code for e in reply.header.errors] == ["DeliveryFailure"]
    async with sessions() as s:
        (message,) = list(await s.scalars(select(Message)))
    # the processing transaction was rolled back; the failure row records the answer
    assert message.status == "FAILED"
    assert message.completed_at is not None
