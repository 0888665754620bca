"""Replies the way the sender's CPA asks (issue 26), through a real HTTP endpoint on loopback:
`syncReplyMode="none"` -> an empty 200 and the signed reply POSTed to the CPA's endpoint;
`signalsAndResponse` -> the reply in the exchange as always; a duplicate re-queues the same
stored reply; the sender's Acknowledgment is recorded; an operator resends. Both databases."""

from __future__ import annotations

import asyncio
import email
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from app.cli.root import app as cli
from app.dev.client import read_reply
from app.dev.devpki import DevPki
from app.dev.replyendpoint import Posted, ReplyEndpoint, reply_endpoint
from app.ebxml import build as ebuild
from app.ebxml.build import BuiltMessage
from app.ebxml.envelope import EbmsHeader
from app.edi.sender import EdiMailer, RelayConfig
from app.main import create_app
from app.models import AccessLog, Message, MessageEvent, Receipt, RegistryEntry
from app.parties import repository as party_repo
from app.parties.spec import read_cpa
from app.platform.mailboxes import parse_mailboxes, parse_relay
from app.platform.settings import Settings
from app.replies.models import ReplyOutbox
from app.security.xmldsig import ACTOR_NEXT_MSH, envelope_signer
from tests.integration.conftest import on_a_socket, served
from tests.integration.edi_servers import running_relay
from tests.integration.messages import (
    assert_signed_ok_reply,
    epj_message,
    msghead,
    post,
)
from tests.integration.seed import auth, token

Sessions = async_sessionmaker[AsyncSession]


def header_of(posted: Posted) -> EbmsHeader:
    reply = read_reply(posted.body, posted.content_type)
    assert reply.header is not None
    return reply.header


def acknowledgment(pki: DevPki, header: EbmsHeader) -> BuiltMessage:
    """The signed Acknowledgment the demo municipality's MSH returns for a reply it got."""
    return ebuild.build_acknowledgment(
        header,
        message_id=f"{uuid.uuid4()}@epj.example",
        timestamp=datetime.now(UTC),
        sign=envelope_signer(pki.municipality.signing),
    )


ASYNC_CPA = Path(__file__).parents[1] / "data" / "async-http-cpa.xml"
CPA_ID = "kpr-async-http-test"
WAIT = 20.0  # seconds a reply may take to arrive before the test fails (never a timing claim)


def cpa_for(endpoint: str, mode: str = "none") -> bytes:
    data = ASYNC_CPA.read_bytes().replace(b"http://127.0.0.1:8090/ebms-replies", endpoint.encode())
    return data.replace(b'tp:syncReplyMode="none"', f'tp:syncReplyMode="{mode}"'.encode())


async def register_cpa(sessions: Sessions, data: bytes) -> None:
    spec = next(p for p in read_cpa(data, "cpa.xml") if p.her_id == 8000001)
    async with sessions() as s:
        await party_repo.upsert_party(s, spec)
        await s.commit()


@pytest.fixture
def endpoint() -> Iterator[ReplyEndpoint]:
    with reply_endpoint() as found:
        yield found


@pytest.fixture
def loopback(settings_with_pki: Settings) -> Settings:
    """Reply endpoints on loopback are allowed (the outbound client refuses them otherwise)."""
    return settings_with_pki.model_copy(update={"outbound_allow_private": True})


@pytest.fixture
async def kpr(
    loopback: Settings, demo_party: int, sessions: Sessions, endpoint: ReplyEndpoint
) -> AsyncIterator[httpx.AsyncClient]:
    await register_cpa(sessions, cpa_for(endpoint.url))
    async with served(loopback) as client:
        yield client


async def arrived(endpoint: ReplyEndpoint) -> Posted:
    return await asyncio.to_thread(endpoint.next, WAIT)


async def row_of(sessions: Sessions, ebms_message_id: str) -> Message:
    async with sessions() as s:
        found = await s.scalar(
            select(Message).where(Message.ebms_message_id == ebms_message_id).order_by(Message.id)
        )
        assert found is not None
        return found


async def kinds(sessions: Sessions, message_id: int) -> list[str]:
    async with sessions() as s:
        rows = await s.scalars(
            select(MessageEvent.kind)
            .where(MessageEvent.message_id == message_id)
            .order_by(MessageEvent.id)
        )
        return list(rows)


async def stored_body(sessions: Sessions, message_id: int) -> bytes:
    async with sessions() as s:
        body = await s.scalar(select(Receipt.body).where(Receipt.message_id == message_id))
        assert body is not None
        return body


async def test_none_answers_empty_and_posts_the_signed_reply_to_the_cpa_endpoint(
    kpr: httpx.AsyncClient, endpoint: ReplyEndpoint, pki: DevPki, sessions: Sessions
) -> None:
    sent = epj_message(pki, cpa_id=CPA_ID)

    r = await post(kpr, sent)

    assert (r.status_code, r.content) == (200, b"")
    posted = await arrived(endpoint)
    assert posted.soap_action == '"ebXML"'
    assert posted.content_type.startswith("multipart/related")
    reply = read_reply(posted.body, posted.content_type, decryption=(pki.municipality.encryption,))
    assert_signed_ok_reply(reply, sent.message_id)
    message = await row_of(sessions, sent.message_id)
    assert posted.body == await stored_body(sessions, message.id)  # the very bytes stored
    for _ in range(50):  # the try is recorded right after the POST was answered
        if "reply_attempt" in await kinds(sessions, message.id):
            break
        await asyncio.sleep(0.1)
    assert {"reply_queued", "reply_attempt"} <= set(await kinds(sessions, message.id))


async def test_signals_and_response_is_answered_in_the_exchange_as_today(
    loopback: Settings, demo_party: int, sessions: Sessions, endpoint: ReplyEndpoint, pki: DevPki
) -> None:
    await register_cpa(sessions, cpa_for(endpoint.url, "signalsAndResponse"))
    async with served(loopback) as client:
        sent = epj_message(pki, cpa_id=CPA_ID)
        r = await post(client, sent)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("multipart/related")
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(ReplyOutbox)) == 0
    assert endpoint.received.empty()


@pytest.mark.parametrize(
    ("endpoint_uri", "reason"),
    [
        ("", "no_endpoint"),
        ("sb.test.nhn.no/DigitalDialog/8000001_async", "unusable_endpoint"),
        ("mailto:kommune@edi.example.no", "no_mail_sender"),
    ],
)
async def test_none_without_a_usable_endpoint_answers_synchronously_and_says_why(
    loopback: Settings,
    demo_party: int,
    sessions: Sessions,
    pki: DevPki,
    endpoint_uri: str,
    reason: str,
) -> None:
    await register_cpa(sessions, cpa_for(endpoint_uri))
    async with served(loopback) as client:
        sent = epj_message(pki, cpa_id=CPA_ID)
        r = await post(client, sent)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("multipart/related")
    message = await row_of(sessions, sent.message_id)
    async with sessions() as s:
        event = await s.scalar(
            select(MessageEvent).where(
                MessageEvent.message_id == message.id, MessageEvent.kind == "reply_synchronous"
            )
        )
    assert event is not None
    assert event.detail["reason"] == reason


async def test_a_duplicate_requeues_the_same_stored_reply(
    kpr: httpx.AsyncClient, endpoint: ReplyEndpoint, pki: DevPki, sessions: Sessions
) -> None:
    sent = epj_message(pki, cpa_id=CPA_ID)
    assert (await post(kpr, sent)).content == b""
    first = await arrived(endpoint)

    again = await post(kpr, sent)

    assert (again.status_code, again.content) == (200, b"")
    second = await arrived(endpoint)
    assert second.body == first.body  # the same stored reply, never a new one
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(ReplyOutbox)) == 1
        statuses = list(await s.scalars(select(Message.status).order_by(Message.id)))
    assert statuses == ["OK", "DUPLICATE"]
    original = await row_of(sessions, sent.message_id)
    assert "reply_requeued" in await kinds(sessions, original.id)


async def test_the_senders_acknowledgment_of_our_reply_is_recorded(
    kpr: httpx.AsyncClient, endpoint: ReplyEndpoint, pki: DevPki, sessions: Sessions
) -> None:
    sent = epj_message(pki, cpa_id=CPA_ID)
    await post(kpr, sent)
    posted = await arrived(endpoint)
    ack = acknowledgment(pki, header_of(posted))

    r = await post(kpr, ack)

    assert (r.status_code, r.content) == (204, b"")
    original = await row_of(sessions, sent.message_id)
    async with sessions() as s:
        row = await s.scalar(select(ReplyOutbox).where(ReplyOutbox.message_id == original.id))
    assert row is not None
    assert row.acknowledged_at is not None
    assert "reply_acknowledged" in await kinds(sessions, original.id)


async def test_an_acknowledgment_naming_no_reply_of_ours_changes_nothing(
    kpr: httpx.AsyncClient, endpoint: ReplyEndpoint, pki: DevPki, sessions: Sessions
) -> None:
    sent = epj_message(pki, cpa_id=CPA_ID)
    await post(kpr, sent)
    posted = await arrived(endpoint)
    other = replace(header_of(posted), message_id=f"{uuid.uuid4()}@kpr-mottak")
    r = await post(kpr, acknowledgment(pki, other))
    assert r.status_code == 204
    async with sessions() as s:
        acknowledged = await s.scalar(select(ReplyOutbox.acknowledged_at))
    assert acknowledged is None


async def test_the_api_shows_the_attempts_and_an_operator_resends(
    kpr: httpx.AsyncClient, endpoint: ReplyEndpoint, pki: DevPki, sessions: Sessions
) -> None:
    sent = epj_message(pki, cpa_id=CPA_ID)
    await post(kpr, sent)
    first = await arrived(endpoint)
    message = await row_of(sessions, sent.message_id)
    operator = auth(await token(sessions, "ops", "operator"))
    oslo = auth(await token(sessions, "oslo", "municipality:0301"))
    for _ in range(50):
        detail = (await kpr.get(f"/api/v1/messages/{message.id}", headers=operator)).json()
        if detail["replies"] and detail["replies"][0]["status"] == "delivered":
            break
        await asyncio.sleep(0.1)
    (shown,) = detail["replies"]
    assert (shown["channel"], shown["status"], shown["attempts"]) == ("http", "delivered", 1)
    assert shown["endpoint"] == endpoint.url
    assert [t["outcome"] for t in shown["tries"]] == ["delivered"]

    refused = await kpr.post(f"/api/v1/messages/{message.id}/replies/resend", headers=oslo)
    assert refused.status_code == 403
    r = await kpr.post(f"/api/v1/messages/{message.id}/replies/resend", headers=operator)

    assert r.status_code == 202, r.text
    assert (await arrived(endpoint)).body == first.body
    async with sessions() as s:
        logged = await s.scalar(
            select(func.count())
            .select_from(AccessLog)
            .where(AccessLog.action == "messages.replies.resend")
        )
    assert logged == 1


async def test_resend_of_a_message_answered_in_the_exchange_is_a_conflict(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions
) -> None:
    sent = epj_message(pki)
    assert (await post(intake, sent)).headers["content-type"].startswith("multipart/related")
    message = await row_of(sessions, sent.message_id)
    operator = auth(await token(sessions, "ops", "operator"))
    r = await intake.post(f"/api/v1/messages/{message.id}/replies/resend", headers=operator)
    assert r.status_code == 409
    missing = await intake.post("/api/v1/messages/999999/replies/resend", headers=operator)
    assert missing.status_code == 404


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_send_with_an_async_endpoint_prints_the_reply_and_acknowledges_it(
    loopback: Settings, demo_party: int, sessions: Sessions, tmp_path: Path
) -> None:
    """`kpr-mottak send --async-endpoint PORT` against the app on a real socket, with the CPA
    naming that port: the empty 200, the reply at the endpoint, its Acknowledgment recorded."""
    port = free_port()
    await register_cpa(sessions, cpa_for(f"http://127.0.0.1:{port}/ebms-replies"))
    head = tmp_path / "msghead.xml"
    head.write_bytes(msghead())
    with on_a_socket(loopback) as base:
        args = ["send", str(head), "--url", f"{base}/ebms", "--cpa-id", CPA_ID]
        args += ["--pki-dir", str(loopback.pki_dir), "--async-endpoint", str(port)]
        r = await asyncio.to_thread(CliRunner().invoke, cli, [*args, "--timeout", "20"])
    assert r.exit_code == 0, r.output
    assert "HTTP 200, empty" in r.output
    # the console wraps long lines
    assert f"arrived at http://127.0.0.1:{port}/ebms-replies" in " ".join(r.output.split())
    assert "Acknowledgment" in r.output
    assert "AppRec status 1 OK" in r.output
    assert "sent: HTTP 204" in r.output
    async with sessions() as s:
        row = await s.scalar(select(ReplyOutbox))
    assert row is not None
    assert (row.status, row.acknowledged_at is not None) == ("delivered", True)


@pytest.mark.slow
async def test_the_server_retries_a_down_endpoint_and_delivers_once_it_is_back(
    kpr: httpx.AsyncClient, endpoint: ReplyEndpoint, pki: DevPki, sessions: Sessions
) -> None:
    """The server's own loop, by the clock: the CPA's RetryInterval (PT2S) apart."""
    endpoint.down()
    sent = epj_message(pki, cpa_id=CPA_ID)
    assert (await post(kpr, sent)).content == b""
    for _ in range(200):  # two refused tries, then the endpoint comes back
        if endpoint.refused >= 2:
            break
        await asyncio.sleep(0.1)
    assert endpoint.refused >= 2
    endpoint.up()

    posted = await arrived(endpoint)

    message = await row_of(sessions, sent.message_id)
    assert posted.body == await stored_body(sessions, message.id)
    seen: tuple[str, int] = ("", 0)
    for _ in range(100):  # the try is recorded right after the endpoint answered
        async with sessions() as s:
            row = await s.scalar(select(ReplyOutbox))
        assert row is not None
        seen = (row.status, row.attempts)
        if row.status == "delivered":
            break
        await asyncio.sleep(0.1)
    assert seen == ("delivered", endpoint.refused + 1)


async def test_an_unsigned_sync_reply_block_in_the_message_decides_nothing(
    kpr: httpx.AsyncClient, endpoint: ReplyEndpoint, pki: DevPki
) -> None:
    """An intermediary may add eb:SyncReply (actor nextMSH, outside the signature): the
    reply still goes the way the CPA says, to the CPA's endpoint."""
    real = epj_message(pki, cpa_id=CPA_ID)
    block = (
        f'<eb:SyncReply SOAP:actor="{ACTOR_NEXT_MSH}" SOAP:mustUnderstand="1" eb:version="2.0"/>'
    )
    at = real.soap.index(b"</eb:MessageHeader>") + len(b"</eb:MessageHeader>")
    soap = real.soap[:at] + block.encode() + real.soap[at:]
    changed = BuiltMessage(
        real.body.replace(real.soap, soap), real.content_type, soap, real.message_id, None
    )

    r = await post(kpr, changed)

    assert (r.status_code, r.content) == (200, b"")
    assert header_of(await arrived(endpoint)).ref_to_message_id == real.message_id


async def test_a_party_without_a_cpa_is_answered_as_its_registry_profile_says(
    loopback: Settings, demo_party: int, sessions: Sessions, endpoint: ReplyEndpoint, pki: DevPki
) -> None:
    """No CPA with KPR, but the CPPA registry's profile (CPP) of the party, kept in its
    registry entry: its channel decides (here `none`, to the endpoint)."""
    spec = next(p for p in read_cpa(cpa_for(endpoint.url), "cpa.xml") if p.her_id == 8000001)
    channels = spec.cpas[0].reply_channels
    assert channels is not None
    now = datetime.now(UTC)
    async with sessions() as s:
        s.add(
            RegistryEntry(
                her_id=8000001,
                known=True,
                fetched_at=now,
                expires_at=now + timedelta(days=1),
                data={"cpa_id": None, "profile_reply_channels": channels.as_json()},
            )
        )
        await s.commit()
    async with served(loopback) as client:
        sent = epj_message(pki)  # no CPA registered: any CPAId
        r = await post(client, sent)
        assert (r.status_code, r.content) == (200, b"")
        assert header_of(await arrived(endpoint)).ref_to_message_id == sent.message_id


async def test_a_mailto_endpoint_gets_the_reply_by_mail_through_the_edi_relay(
    loopback: Settings, demo_party: int, sessions: Sessions, pki: DevPki
) -> None:
    """With the EDI relay configured (its mailer plugged in as AppState.reply_mailer) a
    `none` channel with a mailto: endpoint gets an empty 200 and the stored reply by mail."""
    await register_cpa(sessions, cpa_for("mailto://kommune@edi.example.no"))
    with running_relay() as relay:
        application = create_app(loopback)
        async with application.router.lifespan_context(application):
            relay_config = RelayConfig(parse_relay(f"smtp://127.0.0.1:{relay.port}"))
            boxes = parse_mailboxes(
                "kpr@testedi.nhn.no=imaps://kpr@mail.test/INBOX,"
                "kpr@edi.nhn.no=imaps://kpr@mail.prod/INBOX,"
                "kpr-pilot@edi.test=imaps://kpr@mail.pilot/INBOX?environment=pilot"
            )
            application.state.kpr.reply_mailer = EdiMailer(relay_config, boxes)
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
                sent = epj_message(pki, cpa_id=CPA_ID)
                r = await post(c, sent)
                assert (r.status_code, r.content) == (200, b"")
                for _ in range(100):
                    if relay.taken():
                        break
                    await asyncio.sleep(0.1)
    [(sender, recipients, raw)] = relay.taken()
    # the message came to the pilot address: the reply leaves from the pilot mailbox's
    assert (sender, recipients) == ("kpr-pilot@edi.test", ["kommune@edi.example.no"])
    message = await row_of(sessions, sent.message_id)
    async with sessions() as s:
        reply_id = await s.scalar(
            select(Receipt.reply_ebms_message_id).where(Receipt.message_id == message.id)
        )
        row = await s.scalar(select(ReplyOutbox))
    assert reply_id is not None
    parts = [p.get_payload(decode=True) or b"" for p in email.message_from_bytes(raw).walk()]
    assert any(reply_id.encode() in p for p in parts)  # the stored reply, in the mail
    assert b"SOAPAction" in raw
    assert row is not None
    assert (row.channel, row.status) == ("mailto", "delivered")
