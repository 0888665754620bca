"""Issue 21 item 8 through the HTTP intake, on SQLite and PostgreSQL: a fødselsnummer of the
2032 kind (a first check digit only the new rule allows, an individual number the old century
table does not place) is a valid identity, not a bad date."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.devpki import DevPki
from app.dev.sample import FNR_2032, build_sample
from tests.integration.messages import epj_message, post
from tests.integration.test_intake_business import apprec_of, fids, newest, rule_ids
from tests.integration.test_intake_content_rows import KOMMUNE, guids, head_of, stored_guids


async def test_a_2032_style_fodselsnummer_is_accepted_and_stored(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    head = head_of(melding=build_sample(3, KOMMUNE, ("fnr-2032",), seed=21))
    assert fids(head)[-1] == FNR_2032
    apprec = apprec_of(pki, await post(intake, epj_message(pki, head)))
    assert (apprec.status, apprec.errors) == ("1", ())
    assert await stored_guids(sessions) == set(guids(head))
    message, findings = await newest(sessions)
    assert message.status == "OK"
    assert not rule_ids(findings) & {"IPL-FID-INVALID", "IPL-FID-DATE"}
