"""The transport seam: a payload that never saw ebXML, fed to `IntakeCore.process` by a
test-only transport, gets the same AppRec status and findings as the same MsgHead sent over
POST /ebms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.apprec.parse import parse_apprec
from app.dev.devpki import DevPki
from app.intake.core import IntakeCore
from app.intake.received import OutcomeKind
from app.main import create_app
from app.models import Message
from app.platform.settings import Settings
from app.state import AppState
from tests.integration.messages import DEMO_HER, PILOT_HER, epj_message, msghead, post, reply_of
from tests.integration.seam_transport import LoopbackTransport, signed_and_enveloped


@dataclass
class _Both:
    client: httpx.AsyncClient
    transport: LoopbackTransport
    state: AppState


@pytest.fixture
async def both(settings_with_pki: Settings, demo_party: int) -> AsyncIterator[_Both]:
    """One started app: its HTTP intake, and the loopback transport on its core."""
    application = create_app(settings_with_pki)
    async with application.router.lifespan_context(application):
        state: AppState = application.state.kpr
        asgi = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=asgi, base_url="http://kpr.test") as c:
            yield _Both(c, LoopbackTransport(IntakeCore(state)), state)


def _amqp_payload(pki: DevPki, head: bytes) -> bytes:
    return signed_and_enveloped(head, pki.municipality.signing, pki.kpr.encryption.certificate)


@pytest.mark.parametrize("faults", [(), ("IPL-FID-INVALID",)])
async def test_the_core_answers_as_the_ebms_intake_does(
    both: _Both,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    faults: tuple[str, ...],
) -> None:
    over_http = reply_of(pki, await post(both.client, epj_message(pki, msghead(faults=faults))))
    assert over_http.apprec is not None
    expected = parse_apprec(over_http.apprec)
    assert bool(expected.errors) == bool(faults)

    outcome = await both.transport.deliver(
        _amqp_payload(pki, msghead(faults=faults)),
        message_id="amqp-1",
        from_her=DEMO_HER,
        to_her=PILOT_HER,
    )

    assert outcome.kind is OutcomeKind.ANSWERED
    assert outcome.apprec is not None
    got = parse_apprec(outcome.apprec)
    assert got.status == expected.status
    assert sorted(map(repr, got.errors)) == sorted(map(repr, expected.errors))
    assert outcome.apprec_status is not None
    assert outcome.apprec_status.value == expected.status
    async with sessions() as s:
        row = await s.get(Message, outcome.message_id)
        assert row is not None
        if not faults:
            assert row.status == "OK"
        assert row.kommune_nr == "0301"


async def test_the_same_payload_again_gets_the_stored_apprec(both: _Both, pki: DevPki) -> None:
    payload = _amqp_payload(pki, msghead())
    first = await both.transport.deliver(
        payload, message_id="amqp-2", from_her=DEMO_HER, to_her=PILOT_HER
    )
    again = await both.transport.deliver(
        payload, message_id="amqp-2", from_her=DEMO_HER, to_her=PILOT_HER
    )
    assert first.kind is OutcomeKind.ANSWERED
    assert again.kind is OutcomeKind.DUPLICATE
    assert again.apprec == first.apprec


async def test_an_unknown_sender_is_refused(
    both: _Both, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    outcome = await both.transport.deliver(
        _amqp_payload(pki, msghead()), message_id="amqp-3", from_her="9999999", to_her=PILOT_HER
    )
    assert outcome.kind is OutcomeKind.REFUSED
    assert outcome.apprec is None
    async with sessions() as s:
        statuses = [m.status for m in await s.scalars(select(Message))]
    assert statuses == ["MESSAGE_ERROR"]


async def test_a_payload_signed_by_someone_else_is_refused(both: _Both, pki: DevPki) -> None:
    foreign = signed_and_enveloped(msghead(), pki.kpr.signing, pki.kpr.encryption.certificate)
    outcome = await both.transport.deliver(
        foreign, message_id="amqp-4", from_her=DEMO_HER, to_her=PILOT_HER
    )
    assert outcome.kind is OutcomeKind.REFUSED
    assert outcome.findings
