"""Downgrade protection: plaintext only from parties explicitly marked so, signatures from
everyone, and a CPA that demands encryption always wins."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.apprec.parse import parse_apprec
from app.dev.client import SendOptions, build_ebxml, build_epj_message, prepare_payload
from app.dev.devpki import DevPki
from app.models import Finding, Message
from app.parties import repository as party_repo
from app.parties.spec import CpaSpec, make_party
from tests.integration.messages import DEMO_HER, epj_message, msghead, post, reply_of

# downgrade protection: no SQL that differs between the databases
pytestmark = pytest.mark.databases("sqlite")


async def _set_party(
    sessions: async_sessionmaker[AsyncSession],
    *,
    plaintext_allowed: bool,
    cpa: CpaSpec | None = None,
) -> None:
    async with sessions() as s:
        party = await party_repo.get_party(s, int(DEMO_HER))
        assert party is not None
        spec = make_party(
            DEMO_HER,
            party.name,
            party.orgnr,
            [k.kommune_nr for k in party.kommuner],
            cpas=(cpa,) if cpa else (),
            plaintext_allowed=plaintext_allowed,
        )
        await party_repo.upsert_party(s, spec)
        await s.commit()


def _unprotected(*, sign: bool, encrypt: bool, pki: DevPki) -> httpx.Request:
    built = build_epj_message(
        msghead(),
        replace(SendOptions(from_her=DEMO_HER)),
        signing=pki.municipality.signing if sign else None,
        encrypt_to=pki.kpr.encryption.certificate if encrypt else None,
    )
    return httpx.Request("POST", "/ebms", content=built.body, headers=built.http_headers)


async def _send(intake: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    return await intake.post("/ebms", content=request.content, headers=dict(request.headers))


def _error_rules(pki: DevPki, r: httpx.Response) -> list[str]:
    reply = reply_of(pki, r)
    assert reply.header is not None
    return [(e.description or "").split("]")[0].lstrip("[") for e in reply.header.errors]


def _apprec_status(pki: DevPki, r: httpx.Response) -> str:
    reply = reply_of(pki, r)
    assert reply.apprec is not None
    return parse_apprec(reply.apprec).status


async def _stored_rules(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    """The rule ids stored for the last request, with its status."""
    async with sessions() as s:
        message = (await s.scalars(select(Message).order_by(Message.id.desc()).limit(1))).one()
        rules = await s.scalars(select(Finding.rule_id).where(Finding.message_id == message.id))
        return [message.status, *sorted(rules)]


async def test_unsigned_envelope_from_a_party_that_must_sign_is_refused(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    r = await _send(intake, _unprotected(sign=False, encrypt=True, pki=pki))
    # Before authentication: the generic answer, unsigned; the reason is stored.
    assert _error_rules(pki, r) == ["EBMS-NOT-AUTHENTICATED"]
    assert not reply_of(pki, r).signed
    assert await _stored_rules(sessions) == ["MESSAGE_ERROR", "SEC-ENVELOPE-UNSIGNED-REFUSED"]


async def test_plaintext_allowed_does_not_switch_off_authentication(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """plaintext_allowed and no CPA: an unsigned envelope claiming the party's HER-id, from
    anyone, is refused; it once got AppRec status 1 (issue 9)."""
    await _set_party(sessions, plaintext_allowed=True)
    r = await _send(intake, _unprotected(sign=False, encrypt=False, pki=pki))
    assert _error_rules(pki, r) == ["EBMS-NOT-AUTHENTICATED"]
    assert await _stored_rules(sessions) == ["MESSAGE_ERROR", "SEC-ENVELOPE-UNSIGNED-REFUSED"]


async def test_plaintext_allowed_still_requires_the_business_signature(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _set_party(sessions, plaintext_allowed=True)
    payload = prepare_payload(msghead(), signing=None, encrypt_to=None, sign_document=False)
    built = build_ebxml(payload, SendOptions(from_her=DEMO_HER), pki.municipality.signing)
    r = await post(intake, built)
    assert _apprec_status(pki, r) == "2"
    assert await _stored_rules(sessions) == ["AVVIST", "SEC-MSG-UNSIGNED"]


async def test_signed_plaintext_is_accepted_from_a_party_marked_plaintext_allowed(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _set_party(sessions, plaintext_allowed=True)
    r = await _send(intake, _unprotected(sign=True, encrypt=False, pki=pki))
    assert _apprec_status(pki, r) == "1"


async def test_a_cpa_that_demands_encryption_wins_over_plaintext_allowed(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cpa = CpaSpec(
        "kpr-pilot", (("KPR_IPL", "KPR_IPL"),), requires_signing=False, requires_encryption=True
    )
    await _set_party(sessions, plaintext_allowed=True, cpa=cpa)
    r = await _send(intake, _unprotected(sign=True, encrypt=False, pki=pki))
    assert _error_rules(pki, r) == ["SEC-PLAINTEXT-REFUSED"]


async def test_a_cpa_without_demands_does_not_open_plaintext_to_an_unmarked_party(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cpa = CpaSpec(
        "kpr-pilot", (("KPR_IPL", "KPR_IPL"),), requires_signing=False, requires_encryption=False
    )
    await _set_party(sessions, plaintext_allowed=False, cpa=cpa)
    r = await _send(intake, _unprotected(sign=True, encrypt=False, pki=pki))
    assert _error_rules(pki, r) == ["SEC-PLAINTEXT-REFUSED"]


async def test_withdrawing_plaintext_allowed_takes_effect(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _set_party(sessions, plaintext_allowed=True)
    await _set_party(sessions, plaintext_allowed=False)
    r = await _send(intake, _unprotected(sign=True, encrypt=False, pki=pki))
    assert _error_rules(pki, r) == ["SEC-PLAINTEXT-REFUSED"]
    # Signed and encrypted still works for that party.
    assert _apprec_status(pki, await post(intake, epj_message(pki))) == "1"
