"""An operator sees a message's EDI reply mails in GET /api/v1/messages/{id} and sends them
again with POST .../replies/resend (issue 25), on both databases: a reply that had nowhere to
go (the sender's CPA named no SMTP endpoint) is refused with what to do, and goes once a CPA
with a mailto: channel is imported; a sent one is queued again with the same bytes."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.devpki import DevPki
from app.edi.handler import EdiIntake
from app.edi.sender import RelayConfig, send_due
from app.models import AccessLog, MessageEvent
from app.platform.mailboxes import parse_relay
from app.platform.settings import Settings
from app.replies.models import EdiOutbox
from tests.integration.edi_servers import running_relay
from tests.integration.edi_support import (
    MUNICIPALITY_ADDRESS,
    PILOT_BOX,
    ebxml_message_mail,
    edi_settings,
    edi_state,
    register_municipality,
)
from tests.integration.seed import auth, token

Sessions = async_sessionmaker[AsyncSession]


async def _mail_received(
    settings_with_pki: Settings, sessions: Sessions, tmp: Path, pki: DevPki, endpoint: str | None
) -> tuple[Settings, int]:
    settings = edi_settings(settings_with_pki, tmp)
    await register_municipality(settings, sessions, endpoint)
    edi = EdiIntake(edi_state(settings, sessions))
    box = next(b for b in settings.edi_mailboxes if b.address == PILOT_BOX)
    await edi.handle(ebxml_message_mail(pki), box)
    async with sessions() as s:
        row = (await s.scalars(select(EdiOutbox))).one()
        assert row.message_id is not None
        return settings, row.message_id


async def test_a_reply_mail_without_an_address_is_shown_refused_then_sent_once_the_cpa_names_one(
    settings_with_pki: Settings,
    sessions: Sessions,
    client: httpx.AsyncClient,
    tmp_path: Path,
    pki: DevPki,
) -> None:
    settings, message_id = await _mail_received(settings_with_pki, sessions, tmp_path, pki, None)
    operator = auth(await token(sessions, "ops", "operator"))

    detail = (await client.get(f"/api/v1/messages/{message_id}", headers=operator)).json()
    (shown,) = detail["replies"]
    assert (shown["channel"], shown["status"], shown["endpoint"]) == ("edi", "failed", "")
    assert "SMTP endpoint" in shown["last_error"]

    refused = await client.post(f"/api/v1/messages/{message_id}/replies/resend", headers=operator)
    assert refused.status_code == 409
    assert "mailto:" in refused.json()["detail"]
    assert "kpr-mottak parties import" in refused.json()["detail"]

    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    r = await client.post(f"/api/v1/messages/{message_id}/replies/resend", headers=operator)
    assert r.status_code == 202, r.text
    (queued,) = r.json()
    assert (queued["status"], queued["endpoint"]) == ("pending", f"mailto:{MUNICIPALITY_ADDRESS}")
    with running_relay() as relay:
        assert await send_due(sessions, RelayConfig(parse_relay(f"smtp://127.0.0.1:{relay.port}")))
        [(sender, recipients, raw)] = relay.taken()
    assert (sender, recipients) == (PILOT_BOX, [MUNICIPALITY_ADDRESS])
    assert b'SOAPAction: "ebXML"' in raw
    async with sessions() as s:
        logged = await s.scalar(
            select(func.count())
            .select_from(AccessLog)
            .where(AccessLog.action == "messages.replies.resend")
        )
        events = await s.scalar(
            select(func.count())
            .select_from(MessageEvent)
            .where(MessageEvent.message_id == message_id, MessageEvent.kind == "reply_resend")
        )
    assert (logged, events) == (1, 1)  # the refused resend left nothing behind


async def test_a_sent_reply_mail_is_sent_again_with_the_same_bytes(
    settings_with_pki: Settings,
    sessions: Sessions,
    client: httpx.AsyncClient,
    tmp_path: Path,
    pki: DevPki,
) -> None:
    endpoint = f"mailto:{MUNICIPALITY_ADDRESS}"
    _, message_id = await _mail_received(settings_with_pki, sessions, tmp_path, pki, endpoint)
    operator = auth(await token(sessions, "ops", "operator"))
    oslo = auth(await token(sessions, "oslo", "municipality:0301"))
    with running_relay() as relay:
        config = RelayConfig(parse_relay(f"smtp://127.0.0.1:{relay.port}"))
        assert await send_due(sessions, config) == 1
        detail = (await client.get(f"/api/v1/messages/{message_id}", headers=operator)).json()
        assert [(r["channel"], r["status"]) for r in detail["replies"]] == [("edi", "delivered")]
        forbidden = await client.post(f"/api/v1/messages/{message_id}/replies/resend", headers=oslo)
        assert forbidden.status_code == 403
        r = await client.post(f"/api/v1/messages/{message_id}/replies/resend", headers=operator)
        assert r.status_code == 202, r.text
        assert [(q["status"], q["attempts"]) for q in r.json()] == [("pending", 0)]
        assert await send_due(sessions, config) == 1
        first, again = (raw for _, _, raw in relay.taken())
    assert _soap_part(first) == _soap_part(again)


def _soap_part(raw: bytes) -> bytes:
    """The mail's body after its headers (Date and Message-ID differ from mail to mail)."""
    return raw.split(b"\r\n\r\n", 1)[1]
