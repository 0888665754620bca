"""Hostile header bytes: control characters where a sender's text is echoed back in our XML,
or stored in PostgreSQL. Each request gets an answer and an audit row, never a 500 or an
internal error."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.devpki import DevPki
from app.models import Message
from tests.integration.messages import epj_message


async def _count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(Message)) or 0)


def _variants(pki: DevPki) -> list[tuple[str, bytes, dict[str, str]]]:
    built = epj_message(pki)
    headers = dict(built.http_headers)
    body = built.body
    return [
        ("control char in part Content-Type",
         re.sub(rb"(Content-Type: )application/pkcs7-mime", b"\\1application/pkcs7\x01-mime",
                body, count=1), headers),
        ("control char in Content-Transfer-Encoding",
         re.sub(rb"(Content-Transfer-Encoding: )(\w+)", b"\\1bin\x01ary", body, count=1),
         headers),
        ("control char in the HTTP Content-Type", body,
         {**headers, "Content-Type": headers["Content-Type"] + "\x01"}),
        ("control char in start=", body,
         {**headers, "Content-Type": headers["Content-Type"].replace('start="<', 'start="<\x01')}),
        ("NUL in the HTTP Content-Type", b"x",
         {"Content-Type": "multipart/related; boundary=\x00"}),
    ]  # fmt: skip


@pytest.mark.parametrize("index", range(5))
async def test_control_characters_get_an_answer_and_an_audit_row(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    index: int,
) -> None:
    label, body, headers = _variants(pki)[index]
    before = await _count(sessions)
    r = await intake.post("/ebms", content=body, headers=headers)
    assert r.status_code == 200, label
    assert b"EBMS-INTERNAL-ERROR" not in r.content, label
    assert await _count(sessions) == before + 1, label
    if index == 0:
        # The payload is DER all the same: tolerated, the message is processed.
        return
    assert b"MessageError" in r.content, label
    async with sessions() as s:
        message = (await s.scalars(select(Message).order_by(Message.id.desc()).limit(1))).one()
    assert message.status == "MESSAGE_ERROR", label
    assert "\x00" not in (message.content_type or "")
