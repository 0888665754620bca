"""A signer certificate with a damaged subject in the envelope's ds:KeyInfo is refused with a
clear finding, not answered as an internal error (issue 20's fuzz run)."""

from __future__ import annotations

import base64
import re

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.devpki import DevPki
from tests.integration.messages import epj_message
from tests.integration.test_intake_security import assert_refused, stored_detail
from tests.unit.test_certificate_parsing import damaged_subjects

pytestmark = pytest.mark.databases("sqlite")


async def test_a_signer_certificate_with_a_damaged_subject_is_a_malformed_signature(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    built = epj_message(pki)
    found = re.search(rb"<ds:X509Certificate>(.*?)</ds:X509Certificate>", built.body, re.S)
    assert found is not None
    damaged = damaged_subjects(base64.b64decode(found.group(1)))[0]
    body = (
        built.body[: found.start(1)]
        + base64.encodebytes(damaged).strip()
        + built.body[found.end(1) :]
    )
    r = await intake.post("/ebms", content=body, headers=built.http_headers)
    assert r.status_code == 200
    assert b"EBMS-INTERNAL-ERROR" not in r.content
    assert_refused(pki, r)
    detail = await stored_detail(sessions, "SEC-SIG-MALFORMED")
    assert "Sertifikatet i signaturen kan ikke leses (feltet subjekt kan ikke leses" in detail
