"""Reply mails from `edi_outbox` through a real SMTP relay (aiosmtpd in the test process), on
both databases: sent once and marked, retried with back-off when the relay is away, kept as
failed when a row cannot become a mail (issue 25)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.devpki import DevPki
from app.edi.handler import EdiIntake
from app.edi.sender import RelayConfig, send_due
from app.parties import repository as party_repo
from app.parties.spec import read_cpa
from app.platform.mailboxes import parse_relay
from app.platform.settings import Settings
from app.replies.edi_mail import reply_address
from app.replies.models import EdiOutbox
from tests.integration.edi_servers import free_port, running_relay
from tests.integration.edi_support import (
    MUNICIPALITY_ADDRESS,
    PILOT_BOX,
    ebxml_message_mail,
    edi_settings,
    edi_state,
    register_municipality,
)

Sessions = async_sessionmaker[AsyncSession]


async def _queued(settings_with_pki: Settings, sessions: Sessions, tmp: Path, pki: DevPki) -> None:
    settings = edi_settings(settings_with_pki, tmp)
    await register_municipality(settings, sessions, f"mailto:{MUNICIPALITY_ADDRESS}")
    edi = EdiIntake(edi_state(settings, sessions))
    box = next(b for b in settings.edi_mailboxes if b.address == PILOT_BOX)
    assert (await edi.handle(ebxml_message_mail(pki), box)).reply == "queued"


async def _row(sessions: Sessions) -> EdiOutbox:
    async with sessions() as s:
        return (await s.scalars(select(EdiOutbox))).one()


async def test_a_queued_reply_is_mailed_once(
    settings_with_pki: Settings, sessions: Sessions, tmp_path: Path, pki: DevPki
) -> None:
    await _queued(settings_with_pki, sessions, tmp_path, pki)
    with running_relay() as relay:
        config = RelayConfig(parse_relay(f"smtp://127.0.0.1:{relay.port}"))
        assert await send_due(sessions, config) == 1
        assert await send_due(sessions, config) == 0
        [(sender, recipients, raw)] = relay.taken()
    assert (sender, recipients) == (PILOT_BOX, [MUNICIPALITY_ADDRESS])
    assert b'SOAPAction: "ebXML"' in raw
    row = await _row(sessions)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)


async def test_a_relay_that_is_away_is_tried_again_later(
    settings_with_pki: Settings, sessions: Sessions, tmp_path: Path, pki: DevPki
) -> None:
    await _queued(settings_with_pki, sessions, tmp_path, pki)
    now = datetime.now(UTC)
    config = RelayConfig(parse_relay(f"smtp://127.0.0.1:{free_port()}"), timeout=5)
    assert await send_due(sessions, config, clock=lambda: now) == 0
    row = await _row(sessions)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at >= now + timedelta(minutes=1)
    assert MUNICIPALITY_ADDRESS not in (row.last_error or "")
    with running_relay() as relay:
        config = RelayConfig(parse_relay(f"smtp://127.0.0.1:{relay.port}"))
        assert await send_due(sessions, config, clock=lambda: now) == 0  # not yet due
        assert await send_due(sessions, config, clock=lambda: now + timedelta(minutes=2)) == 1
        assert len(relay.taken()) == 1


async def test_a_row_that_is_no_ebxml_message_fails_for_good(
    settings_with_pki: Settings, sessions: Sessions, tmp_path: Path, pki: DevPki
) -> None:
    await _queued(settings_with_pki, sessions, tmp_path, pki)
    async with sessions() as s, s.begin():
        row = (await s.scalars(select(EdiOutbox))).one()
        row.body = b"garbage"
    with running_relay() as relay:
        config = RelayConfig(parse_relay(f"smtp://127.0.0.1:{relay.port}"))
        assert await send_due(sessions, config) == 0
        assert relay.taken() == []
    row = await _row(sessions)
    assert (row.status, row.attempts) == ("failed", 1)


async def test_the_reply_goes_to_the_mailto_channel_of_the_cpa(
    settings_with_pki: Settings, sessions: Sessions, reference_dir: Path
) -> None:
    """NAV's test CPA: the party's default channel is SMTP, `mailto://example@example.com`."""
    data = (reference_dir / "cpa" / "nav-qass-35065.xml").read_bytes()
    [party] = [p for p in read_cpa(data, "nav.xml") if p.her_id == 8141253]
    async with sessions() as s:
        row, _ = await party_repo.upsert_party(s, party)
        await s.commit()
        cpa_id = party.cpas[0].cpa_id
        assert await reply_address(s, row.id, cpa_id, None, None) == "example@example.com"
        assert await reply_address(s, row.id + 1000, cpa_id, None, None) is None
