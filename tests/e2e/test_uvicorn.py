"""Through a real socket: a uvicorn process started the way operators start it, answering a
signed and encrypted message as a municipality's EPJ sends it."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from sqlalchemy import select

from app.dev.client import SendOptions, build_epj_message, read_reply
from app.models import Message
from app.platform.db import create_engine, session_factory
from app.security.keys import KeyPair, load_certificate, load_key_pair
from tests.e2e.conftest import Server
from tests.integration.messages import DEMO_HER, assert_signed_ok_reply, msghead

pytestmark = pytest.mark.e2e


def _pair(server: Server, name: str) -> KeyPair:
    return load_key_pair(
        (server.pki_dir / f"{name}.key").read_bytes(),
        (server.pki_dir / f"{name}.crt").read_bytes(),
    )


async def _stored(server: Server, body: bytes) -> Message:
    engine = create_engine(server.database_url)
    try:
        async with session_factory(engine)() as s:
            digest = hashlib.sha256(body).hexdigest()
            return (await s.scalars(select(Message).where(Message.sha256 == digest))).one()
    finally:
        await engine.dispose()


async def test_signed_encrypted_message_over_a_socket_gets_ok_apprec(server: Server) -> None:
    built = build_epj_message(
        msghead(),
        SendOptions(from_her=DEMO_HER),
        signing=_pair(server, "municipality-signing"),
        encrypt_to=load_certificate((server.pki_dir / "kpr-encryption.crt").read_bytes()),
    )
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60.0) as client:
        r = await client.post("/ebms", content=built.body, headers=built.http_headers)

    assert r.status_code == 200, r.text[:500]
    reply = read_reply(
        r.content,
        r.headers["content-type"],
        decryption=(_pair(server, "municipality-encryption"),),
    )
    assert_signed_ok_reply(reply, built.message_id)
    message = await _stored(server, built.body)
    assert message.status == "OK"
    assert message.remote_addr == "127.0.0.1"


async def test_garbage_over_a_socket_gets_a_message_error(server: Server) -> None:
    body = b"dette er ikke en ebXML-melding"
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60.0) as client:
        r = await client.post("/ebms", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 200
    reply = read_reply(r.content, r.headers["content-type"])
    assert reply.header is not None
    assert reply.header.action == "MessageError"
    assert [e.error_code for e in reply.header.errors] == ["MimeProblem"]
    assert (await _stored(server, body)).status == "MESSAGE_ERROR"
