"""Register keys at rest: `register rotate-key` re-encrypts every identifier under the new key
and every row stays readable; `db upgrade` seals identifiers stored in clear before the
register store existed."""

from __future__ import annotations

import random

import anyio
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from app.cli.root import app as cli
from app.dev.devpki import DevPki
from app.models import Finding, IplosBruker
from app.platform.settings import Settings
from app.register import keyrotation
from app.register.keys import read_key_file, write_key_file
from app.register.models import Hendelse
from app.register.protect import Protector
from tests.integration.conftest import THREE_ADDRESSES, served
from tests.integration.seed import add_message
from tests.integration.test_intake_history import send
from tests.integration.test_register_store import every_kind
from tests.protector import KEY_DIR, KEY_ID, PROTECTOR, REGISTER_SETTINGS
from tests.register_messages import Event, Notif, Person, melding_xml

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def kpr(environments: httpx.AsyncClient) -> httpx.AsyncClient:
    return environments


async def _sealed_values(sessions: Sessions) -> list[str]:
    async with sessions() as s:
        out: list[str] = []
        for model in (Hendelse, Finding, IplosBruker):
            out.extend(v for v in await s.scalars(select(model.fid)) if v)
        return out


async def test_rotate_key_reencrypts_everything_and_keeps_it_readable(
    kpr: httpx.AsyncClient,
    pki: DevPki,
    sessions: Sessions,
    settings_with_pki: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notifs = every_kind(random.Random(5))
    good = notifs[0].person.fid
    bad = Person("B-bad", good[:-1] + str((int(good[-1]) + 1) % 10))
    notifs.append(Notif(8, bad, (Event("TjenesteStart", "T8", "2018-06-01"),)))
    assert (await send(kpr, pki, sessions, melding_xml(notifs))).status == "3"
    before = await _sealed_values(sessions)
    opened = sorted(PROTECTOR.open(v) for v in before)
    assert {v.split(":")[0] for v in before} == {KEY_ID}

    new_key = KEY_DIR / f"rot-{random.randrange(10**9)}.key"
    write_key_file(new_key)
    monkeypatch.setenv("KPR_DATABASE_URL", settings_with_pki.database_url)
    monkeypatch.setenv("KPR_ENV", "test")
    monkeypatch.setenv("KPR_REGISTER_KEYS", f"t2={new_key},{REGISTER_SETTINGS['register_keys']}")
    monkeypatch.setenv("KPR_REGISTER_HMAC_KEY", str(REGISTER_SETTINGS["register_hmac_key"]))
    # the CLI runs its own event loop: in a thread, beside this test's
    result = await anyio.to_thread.run_sync(
        lambda: CliRunner().invoke(cli, ["register", "rotate-key"])
    )
    assert result.exit_code == 0, result.output
    assert "left under other keys: 0" in result.output

    after = await _sealed_values(sessions)
    assert {v.split(":")[0] for v in after} == {"t2"}
    only_new = Protector(
        keys={"t2": read_key_file(new_key)}, current="t2", hmac_key=PROTECTOR.hmac_key
    )
    assert sorted(only_new.open(v) for v in after) == opened
    # a service started with the new keys (the operator configures them before rotating)
    # still finds a brukerNr by its fid's keyed hash, and opens the stored fid
    rotated = settings_with_pki.model_copy(
        update={
            "receivers": THREE_ADDRESSES,
            "register_keys": (("t2", new_key), *settings_with_pki.register_keys),
        }
    )
    changed = Person("B-new", good)  # B-1's person under another brukerNr: found by the fid
    again = Notif(9, changed, (Event("TjenesteSlutt", "T1", "2018-07-01"),))
    async with served(rotated) as client:
        answer = await send(client, pki, sessions, melding_xml([again]))
    assert answer.status == "1"
    assert "IPL-BRUKERNR-CHANGED" in answer.rules


async def test_identifiers_stored_in_clear_before_the_register_are_sealed(
    sessions: Sessions,
) -> None:
    seeded = await add_message(sessions)
    async with sessions() as s:
        s.add(
            IplosBruker(environment="pilot", kommune_nr="0301", bruker_nr="B1", fid="01010112345")
        )
        s.add(
            Finding(
                message_id=seeded.id,
                rule_id="IPL-FID-INVALID",
                layer="content",
                severity="error",
                consequence="drop_notification",
                location="/Melding",
                detail="d",
                fid="02020254321",
            )
        )
        await s.commit()
    async with sessions() as s:
        assert await keyrotation.seal_legacy(s, PROTECTOR) == 2
        await s.commit()
        pair = await s.get(IplosBruker, ("pilot", "0301", "B1"))
        assert pair is not None
        assert PROTECTOR.open(pair.fid) == "01010112345"
        assert pair.fid_hmac == PROTECTOR.digest("01010112345")
        fids = [f for f in await s.scalars(select(Finding.fid)) if f]
        assert [PROTECTOR.open(f) for f in fids] == ["02020254321"]
        assert await keyrotation.seal_legacy(s, PROTECTOR) == 0
