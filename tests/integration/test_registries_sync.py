"""`kpr-mottak parties sync` against the fake registries over real HTTP, and the REST AR with
its HelseID client-credentials token source (issue 23)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from app.cli.root import app
from app.dev.devpki import DevPki, write_dev_pki
from app.keyring import load_keyring
from app.models import RegistryEntry
from app.outbound import OutboundClient
from app.platform.settings import Settings
from app.registries import lookup
from app.registries.ar_rest import ClientCredentials
from app.registries.fake import FakeParty, FakeRegistry, Served, serve_fake
from app.registries.http import Caller
from app.registries.sync import checked_spec, year_kommuner

runner = CliRunner()
DEMO_HER = 8000001


def demo_fake(pki: DevPki) -> FakeParty:
    m = pki.municipality
    return FakeParty(
        her_id=DEMO_HER,
        name="Demo kommune fra AR",
        orgnr=m.orgnr,
        municipality="301",
        signing_der=m.signing.certificate.public_bytes(Encoding.DER),
        encryption_der=m.encryption.certificate.public_bytes(Encoding.DER),
        cpa_id="nhn:cpa:4711",
    )


@pytest.fixture
def fake_thread() -> Iterator[tuple[FakeRegistry, Served]]:
    """The fakes on a loopback port, in a thread of their own (the CLI runs its own loop)."""
    fake = FakeRegistry()
    ready: list[Served] = []
    stop = threading.Event()

    async def run() -> None:
        async with serve_fake(fake) as where:
            ready.append(where)
            await anyio.to_thread.run_sync(stop.wait)

    thread = threading.Thread(target=lambda: asyncio.run(run()), daemon=True)
    thread.start()
    while not ready and thread.is_alive():
        stop.wait(0.02)
    assert ready, "the fake registries did not start"
    yield fake, ready[0]
    stop.set()
    thread.join(timeout=10)


@pytest.fixture
def cli_env(
    clean_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    pki: DevPki,
    fake_thread: tuple[FakeRegistry, Served],
) -> FakeRegistry:
    fake, where = fake_thread
    write_dev_pki(tmp_path / "pki", pki)
    for key, value in {
        "KPR_DATABASE_URL": clean_database_url,
        "KPR_ENV": "test",
        "KPR_PKI_DIR": str(tmp_path / "pki"),
        "KPR_AR_URL": where.ar_soap,
        "KPR_CPPA_URL": where.cppa,
        "KPR_OUTBOUND_ALLOW_PRIVATE": "true",
        "COLUMNS": "250",  # rich tables unwrapped
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    return fake


def test_sync_keeps_operators_parties_unless_adopted(cli_env: FakeRegistry, pki: DevPki) -> None:
    cli_env.add(demo_fake(pki))
    r = runner.invoke(app, ["parties", "add", "--her-id", str(DEMO_HER), "--name", "Typed in"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["parties", "sync"])
    assert r.exit_code == 0, r.output
    assert "kept" in r.output
    assert "--adopt" in r.output
    r = runner.invoke(app, ["parties", "sync", "--her-id", str(DEMO_HER), "--adopt"])
    assert r.exit_code == 0, r.output
    assert "updated" in r.output
    r = runner.invoke(app, ["parties", "list"])
    assert "Demo kommune fra AR" in r.output
    assert "nhn:cpa:4711" in r.output  # the CPA for the pair, its id kept as a string
    r = runner.invoke(app, ["parties", "sync", "--her-id", "8999999"])
    assert r.exit_code == 0, r.output
    assert "unknown" in r.output


def test_sync_reports_an_outage(cli_env: FakeRegistry, pki: DevPki) -> None:
    cli_env.add(demo_fake(pki))
    cli_env.down = True
    r = runner.invoke(app, ["parties", "sync", "--her-id", str(DEMO_HER)])
    assert r.exit_code == 1
    assert "unavailable" in r.output


def test_sync_needs_the_registry_configured(
    cli_env: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KPR_AR_URL", "")
    r = runner.invoke(app, ["parties", "sync"])
    assert r.exit_code == 2
    assert "KPR_AR_URL" in r.output


async def test_rest_ar_with_a_helseid_token(
    settings_with_pki: Settings, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The REST AR behind the fake's token endpoint: the client-credentials source gets a
    token once and the party, certificates and CPP fallback come back as with SOAP."""
    fake = FakeRegistry()
    fake.add(demo_fake(pki))
    fake.parties[DEMO_HER].cpa_id = None  # no CPA: the CPP
    client = OutboundClient(allow_private=True)
    try:
        async with serve_fake(fake) as where:
            settings = settings_with_pki.model_copy(
                update={"ar_url": where.ar_rest, "ar_kind": "rest", "cppa_url": where.cppa}
            )
            caller = Caller(client, "helseid", 5.0, 65536)
            tokens = ClientCredentials(caller, where.token_url, "kpr-mottak", "secret", "nhn:ar")
            anchors = (pki.ca.certificate,)
            regs = lookup.build(settings, client, anchors, tokens=tokens)
            assert regs is not None
            fetched = await regs.fetch(DEMO_HER, 131725)
            again = await regs.fetch(DEMO_HER, 131725)
            unknown = await regs.fetch(8999999, 131725)
    finally:
        await client.aclose()
    assert fake.calls.count("token") == 1
    assert unknown is None
    assert fetched == again
    assert fetched is not None
    assert fetched.party.municipality == "0301"
    assert fetched.party.addresses["E_SB_ASYNC"].endswith(f"/{DEMO_HER}_async")
    assert fetched.agreement is not None
    assert fetched.agreement.cpa_id is None  # the CPP
    async with sessions() as s:
        kommuner = await year_kommuner(s, dt.datetime.now(dt.UTC).year)
        assert await s.get(RegistryEntry, DEMO_HER) is None
    spec = checked_spec(fetched, anchors, kommuner, dt.datetime.now(dt.UTC))
    assert spec.kommuner == ("0301",)
    assert spec.source == "ar"


async def test_dev_registry_serves_the_dev_pki_party(
    settings_with_pki: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """`kpr-mottak dev registry`'s parties: the demo municipality passes the checks."""
    from app.registries.fake import dev_registry_parties

    fake = dev_registry_parties(settings_with_pki.pki_dir)
    client = OutboundClient(allow_private=True)
    try:
        async with serve_fake(fake) as where:
            settings = settings_with_pki.model_copy(update={"ar_url": where.ar_soap})
            anchors = load_keyring(settings).trust_anchors
            regs = lookup.build(settings, client, anchors)
            assert regs is not None
            fetched = await regs.fetch(DEMO_HER, None)
    finally:
        await client.aclose()
    assert fetched is not None
    async with sessions() as s:
        kommuner = await year_kommuner(s, dt.datetime.now(dt.UTC).year)
    spec = checked_spec(fetched, anchors, kommuner, dt.datetime.now(dt.UTC))
    assert spec.her_id == DEMO_HER
    assert spec.kommuner == ("0301",)
