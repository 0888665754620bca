"""Issue 23, done when: senders known from NHN's registries, tried against the fakes over real
HTTP (the fake AR SOAP and CPPA servers on a loopback port, reached through the service's one
outbound client).

- a new municipality's party exists only in the fake AR: its first signed message is
  accepted and the party appears with source `ar`, its AMQP queues stored;
- its certificate is renewed in the fake AR: the next message is accepted after one forced
  refresh;
- with the fake AR stopped, the known sender still gets through and an unknown one gets a
  temporary failure (DeliveryFailure, Warning), not a rejection."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.parties import party_out
from app.dev.client import ReadReply, SendOptions, build_epj_message, read_reply
from app.dev.devpki import DevParty, DevPki, make_party
from app.models import Party, RegistryEntry
from app.platform.settings import Settings
from app.registries.fake import FakeParty, FakeRegistry, Served, serve_fake
from tests.integration.conftest import served
from tests.integration.messages import msghead, post

NEW_HER, STRANGER_HER = 8100001, 8100002
NEW_ORGNR = "974760673"  # a valid organisation number (Brønnøysundregistrene's own)
# after a merger: the municipality's new organisation number, and certificates issued to it
RENEWED_ORGNR = "923609016"


@dataclass
class World:
    fake: FakeRegistry
    served: Served
    settings: Settings


@pytest.fixture
async def world(settings_with_pki: Settings) -> AsyncIterator[World]:
    fake = FakeRegistry()
    async with serve_fake(fake) as where:
        settings = settings_with_pki.model_copy(
            update={
                "ar_url": where.ar_soap,
                "cppa_url": where.cppa,
                "outbound_allow_private": True,
                "registry_timeout_seconds": 5.0,
            }
        )
        yield World(fake, where, settings)


def fake_party(party: DevParty, her_id: int = NEW_HER) -> FakeParty:
    return FakeParty(
        her_id=her_id,
        name="Ny kommune",
        orgnr=party.orgnr,
        municipality="301",  # the AR writes kodeverk 3402 without leading zeros
        signing_der=party.signing.certificate.public_bytes(Encoding.DER),
        encryption_der=party.encryption.certificate.public_bytes(Encoding.DER),
    )


def new_party(pki: DevPki, orgnr: str = NEW_ORGNR) -> DevParty:
    return make_party(pki.ca, "Ny kommune", orgnr, dt.datetime.now(dt.UTC))


async def send(
    client: httpx.AsyncClient, pki: DevPki, party: DevParty, her_id: int = NEW_HER
) -> ReadReply:
    built = build_epj_message(
        msghead(sender_her=her_id, kommune="0301", msg_id=str(uuid.uuid4())),
        SendOptions(from_her=str(her_id)),
        signing=party.signing,
        encrypt_to=pki.kpr.encryption.certificate,
    )
    response = await post(client, built)
    return read_reply(
        response.content, response.headers["content-type"], decryption=(party.encryption,)
    )


def accepted(reply: ReadReply) -> bool:
    return reply.header is not None and reply.header.action == "APPREC"


async def test_done_when(
    world: World, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = new_party(pki)
    world.fake.add(fake_party(first))
    async with served(world.settings) as client:
        # 1. only in the fake AR: accepted, registered with source ar and its queues
        assert accepted(await send(client, pki, first))
        async with sessions() as s:
            party = await s.scalar(select(Party).where(Party.her_id == NEW_HER))
            entry = await s.get(RegistryEntry, NEW_HER)
        assert party is not None
        assert party.source == "ar"
        assert [k.kommune_nr for k in party.kommuner] == ["0301"]
        shown = party_out(party)  # what the party API shows
        assert shown.source == "ar"
        assert shown.registry_fetched_at is not None
        assert shown.registry_expires_at is not None
        assert shown.registry_expires_at > shown.registry_fetched_at
        assert entry is not None
        assert entry.known
        assert entry.async_queue == f"sb.test.nhn.no/DigitalDialog/{NEW_HER}_async"
        assert entry.error_queue == f"sb.test.nhn.no/DigitalDialog/{NEW_HER}_error"

        # 2. renewed in the fake AR (a new organisation number, so the certificate the
        # service holds no longer fits): accepted after one forced refresh
        renewed = new_party(pki, RENEWED_ORGNR)
        world.fake.add(fake_party(renewed))
        calls_before = len(world.fake.calls)
        assert accepted(await send(client, pki, renewed))
        assert world.fake.calls[calls_before:].count("GetCommunicationPartyDetails") == 1
        async with sessions() as s:
            party = await s.scalar(select(Party).where(Party.her_id == NEW_HER))
        assert party is not None
        assert party.orgnr == RENEWED_ORGNR
        # a certificate the AR does not have: refused, and no second refresh within 10 min
        calls_before = len(world.fake.calls)
        assert not accepted(await send(client, pki, new_party(pki, "983544622")))
        assert world.fake.calls[calls_before:] == []

        # 3. the fake AR stopped (and the entry past its cache time, so the service asks):
        # the known sender passes on its last good entry (asked once, not again for each
        # message), an unknown one is told to retry
        world.fake.down = True
        async with sessions() as s:
            entry = await s.get(RegistryEntry, NEW_HER)
            assert entry is not None
            entry.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            await s.commit()
        calls_before = len(world.fake.calls)
        assert accepted(await send(client, pki, renewed))
        assert accepted(await send(client, pki, renewed))
        stranger = await send(client, pki, first, STRANGER_HER)
        metrics = (await client.get("/metrics")).text
    assert world.fake.calls[calls_before:] == ["GetCommunicationPartyDetails"] * 2
    # the registry's access is counted (and logged): calls per operation and outcome
    assert (
        'kpr_registry_calls_total{operation="GetCommunicationPartyDetails",outcome="ok",'
        'registry="ar-soap"} 2.0' in metrics
    )
    assert 'kpr_registry_lookups_total{result="unavailable"} 2.0' in metrics
    assert stranger.header is not None
    assert stranger.header.action == "MessageError"
    assert [(e.error_code, e.severity) for e in stranger.header.errors] == [
        ("DeliveryFailure", "Warning")
    ]
    async with sessions() as s:
        assert await s.scalar(select(Party).where(Party.her_id == STRANGER_HER)) is None


async def test_unknown_her_ids_are_cached_as_unknown(world: World, pki: DevPki) -> None:
    """A stranger cannot make the service call the registry at will: the AR's answer that it
    does not know the HER-id is kept for the cache time."""
    async with served(world.settings) as client:
        first = await send(client, pki, new_party(pki), STRANGER_HER)
        asked = len(world.fake.calls)
        second = await send(client, pki, new_party(pki), STRANGER_HER)
    for reply in (first, second):
        assert reply.header is not None
        assert reply.header.action == "MessageError"
        assert [e.severity for e in reply.header.errors] == ["Error"]
    assert asked == 1  # GetCommunicationPartyDetails: InvalidHerIdSupplied
    assert len(world.fake.calls) == asked


async def test_what_the_registry_says_is_checked_like_an_import(
    world: World, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A municipality code not in this year's list: the party is not believed (refused as
    unknown), the reason kept for the operator."""
    party = new_party(pki)
    bad = fake_party(party)
    bad.municipality = "9999"
    world.fake.add(bad)
    async with served(world.settings) as client:
        reply = await send(client, pki, party)
    assert not accepted(reply)
    async with sessions() as s:
        entry = await s.get(RegistryEntry, NEW_HER)
        assert await s.scalar(select(Party).where(Party.her_id == NEW_HER)) is None
    assert entry is not None
    assert not entry.known
    assert entry.problem is not None
    assert "9999" in entry.problem


async def test_a_slow_registry_is_an_outage_within_the_deadline(world: World, pki: DevPki) -> None:
    world.fake.add(fake_party(new_party(pki)))
    world.fake.delay = 1.0
    settings = world.settings.model_copy(update={"registry_timeout_seconds": 0.1})
    async with served(settings) as client:
        reply = await send(client, pki, new_party(pki))
    assert reply.header is not None
    assert [(e.error_code, e.severity) for e in reply.header.errors] == [
        ("DeliveryFailure", "Warning")
    ]


async def test_a_registry_fault_is_a_temporary_failure(world: World, pki: DevPki) -> None:
    """A fault other than an unknown HER-id (the AR's own trouble) is an outage."""
    world.fake.add(fake_party(new_party(pki)))
    world.fake.fault = "InternalServerError"
    async with served(world.settings) as client:
        reply = await send(client, pki, new_party(pki))
        world.fake.fault = None  # nothing was cached: the resend is looked up afresh
        assert accepted(await send(client, pki, new_party(pki)))
    assert reply.header is not None
    assert [(e.error_code, e.severity) for e in reply.header.errors] == [
        ("DeliveryFailure", "Warning")
    ]
