"""What the EDI tests share: settings with mailboxes, the demo municipality with an SMTP
endpoint in its CPA, and mails as a municipality's MSH sends them (no tests here)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import undefer

from app.dev import devsetup
from app.dev.client import SendOptions, build_epj_message
from app.dev.devpki import DevPki
from app.edi.mail import ebxml_mail
from app.keyring import load_keyring
from app.parties import repository as party_repo
from app.parties.channels import ReplyChannel, ReplyChannels
from app.parties.spec import CpaSpec
from app.platform.mailboxes import parse_mailboxes
from app.platform.metrics import Metrics
from app.platform.settings import ReceiverEnvironment, Settings
from app.replies.models import EdiOutbox
from app.state import AppState
from tests.integration.messages import msghead

PILOT_BOX = "kpr@pilot.edi.test"
TEST_BOX = "kpr@test.edi.test"
MUNICIPALITY_ADDRESS = "kommune-0301@edi.test"  # its CPA's SMTP endpoint
TEST_HER = 171479


def mailbox_entry(address: str, scheme: str, user: str, port: int, environment: str) -> str:
    """A `KPR_EDI_MAILBOXES` entry for a server on loopback (IMAP: INBOX; POP3: no folder)."""
    folder = "/INBOX" if scheme.startswith("imap") else ""
    return f"{address}={scheme}://{user}@127.0.0.1:{port}{folder}?environment={environment}"


def edi_settings(
    settings: Settings, tmp: Path, port: int = 1, scheme: str = "imap", **more: object
) -> Settings:
    """KPR's two mailboxes (the pilot's and the test environment's) on one server at
    `port`, read by `scheme` (imap, imaps, pop3, pop3s)."""
    secrets = tmp / "edi-credentials"
    secrets.write_text(f"{PILOT_BOX}:pilot-secret\n{TEST_BOX}:test-secret\n")
    boxes = parse_mailboxes(
        mailbox_entry(PILOT_BOX, scheme, "kpr-pilot", port, "pilot")
        + ","
        + mailbox_entry(TEST_BOX, scheme, "kpr-test", port, "test")
    )
    return settings.model_copy(
        update={
            "receivers": {131725: ReceiverEnvironment.PILOT, TEST_HER: ReceiverEnvironment.TEST},
            "edi_mailboxes": boxes,
            "edi_credentials_file": secrets,
            **more,
        }
    )


def edi_state(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> AppState:
    return AppState(
        settings=settings,
        engine=None,  # type: ignore[arg-type]
        sessions=sessions,
        metrics=Metrics(),
        keyring=load_keyring(settings),
    )


async def register_municipality(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], endpoint: str | None
) -> None:
    """The demo municipality (HER 8000001) with the CPA `kpr-pilot` naming `endpoint`."""
    spec = devsetup.demo_party(settings.pki_dir)
    channel = ReplyChannel(
        channel_id="smtp",
        sync_reply_mode="none",
        endpoint=endpoint,
        retries=None,
        retry_interval_seconds=None,
    )
    channels = ReplyChannels(default=channel) if endpoint is not None else None
    spec = replace(spec, cpas=(CpaSpec(cpa_id="kpr-pilot", reply_channels=channels),))
    async with sessions() as s:
        await party_repo.upsert_party(s, spec)
        await s.commit()


def ebxml_message_mail(
    pki: DevPki,
    *,
    to_address: str = PILOT_BOX,
    body: tuple[bytes, str] | None = None,
    **options: object,
) -> bytes:
    """A signed, encrypted message from the demo municipality in a mail to `to_address`."""
    if body is None:
        built = build_epj_message(
            msghead(),
            replace(SendOptions(from_her="8000001"), **options),  # type: ignore[arg-type]
            signing=pki.municipality.signing,
            encrypt_to=pki.kpr.encryption.certificate,
        )
        body = (built.body, built.content_type)
    return ebxml_mail(
        body[0],
        body[1],
        sender="someone-else@mail.example",  # the mail's From decides nothing
        recipient=to_address,
        message_id=f"{uuid.uuid4()}@msh.example",
        date=datetime.now(UTC),
    ).data


async def outbox_rows(sessions: async_sessionmaker[AsyncSession]) -> list[EdiOutbox]:
    """The reply mails queued, oldest first, with their bodies."""
    async with sessions() as s:
        query = select(EdiOutbox).options(undefer(EdiOutbox.body)).order_by(EdiOutbox.id)
        return list((await s.scalars(query)).all())
