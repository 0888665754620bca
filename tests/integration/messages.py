"""Messages for intake tests, built with the product's own client (as an EPJ would)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import httpx

from app.apprec.model import AppRec
from app.apprec.parse import parse_apprec
from app.dev.client import ReadReply, SendOptions, build_epj_message, read_reply
from app.dev.devpki import DevPki
from app.dev.sample import build_sample, wrap_in_msghead
from app.ebxml.build import BuiltMessage

DEMO_HER = "8000001"
PILOT_HER = "131725"


def msghead(
    notifications: int = 3,
    *,
    kommune: str = "0301",
    faults: tuple[str, ...] = (),
    sender_her: int = 8000001,
    receiver_her: int = 131725,
    msg_id: str | None = None,
    msg_type: str = "KPR_IPL",
) -> bytes:
    melding = build_sample(notifications, kommune, faults)
    return wrap_in_msghead(
        melding,
        sender_her,
        receiver_her,
        msg_id or str(uuid.uuid4()),
        datetime.now(UTC).replace(microsecond=0),
        msg_type=msg_type,
    )


def epj_message(pki: DevPki, head: bytes | None = None, **options: object) -> BuiltMessage:
    """A signed, encrypted message from the demo municipality to the pilot address."""
    opts = replace(SendOptions(from_her=DEMO_HER), **options)  # type: ignore[arg-type]
    return build_epj_message(
        head if head is not None else msghead(),
        opts,
        signing=pki.municipality.signing,
        encrypt_to=pki.kpr.encryption.certificate,
    )


async def post(client: httpx.AsyncClient, built: BuiltMessage) -> httpx.Response:
    return await client.post("/ebms", content=built.body, headers=built.http_headers)


def reply_of(pki: DevPki, response: httpx.Response) -> ReadReply:
    return read_reply(
        response.content,
        response.headers["content-type"],
        decryption=(pki.municipality.encryption,),
    )


def assert_signed_ok_reply(reply: ReadReply, sent_message_id: str) -> AppRec:
    """A reply to a good message: signed, an Acknowledgment and an APPREC answering
    `sent_message_id`, and an AppRec with status 1. Returns the AppRec."""
    assert reply.findings == ()
    assert reply.header is not None
    assert reply.header.action == "APPREC"
    assert reply.header.ref_to_message_id == sent_message_id
    assert reply.header.acknowledgment is not None
    assert reply.signed
    assert reply.signature_findings == ()
    assert reply.apprec is not None
    apprec = parse_apprec(reply.apprec)
    assert apprec.status == "1", apprec.errors
    return apprec
