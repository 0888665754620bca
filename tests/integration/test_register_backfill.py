"""`kpr-mottak register backfill` (issue 19, item 7): the register rows of messages stored
before the register store existed are rebuilt from their stored requests, equal to what the
intake writes; a message whose request retention removed is reported (exit 1); a second run
changes nothing."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import delete, func, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner, Result

from app.cli.root import app as cli
from app.dev.devpki import DevPki
from app.intake.backfill import Reader, Recovery, Request, read_request
from app.models import Base, Message
from app.platform.settings import Settings
from app.register.models import (
    Episode,
    Hendelse,
    Kontaktperson,
    Melding,
    MeldingKommune,
    Notifikasjon,
)
from tests.integration.messages import DEMO_HER, epj_message
from tests.integration.test_intake_history import PILOT_HER, head, send
from tests.protector import PROTECTOR, REGISTER_SETTINGS
from tests.register_messages import Event, Notif, Person, melding_xml, person

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def kpr(environments: httpx.AsyncClient) -> httpx.AsyncClient:
    return environments


@pytest.fixture
def backfill(
    settings_with_pki: Settings, monkeypatch: pytest.MonkeyPatch
) -> Any:  # the CLI, as an operator runs it against this test's database and keys
    monkeypatch.setenv("KPR_DATABASE_URL", settings_with_pki.database_url)
    monkeypatch.setenv("KPR_ENV", "test")
    monkeypatch.setenv("KPR_PKI_DIR", str(settings_with_pki.pki_dir))
    monkeypatch.setenv("KPR_REGISTER_KEYS", str(REGISTER_SETTINGS["register_keys"]))
    monkeypatch.setenv("KPR_REGISTER_HMAC_KEY", str(REGISTER_SETTINGS["register_hmac_key"]))

    async def run(*args: str) -> Result:
        # the CLI runs its own event loop: in a thread, beside this test's
        return await anyio.to_thread.run_sync(
            lambda: CliRunner().invoke(cli, ["register", "backfill", *args])
        )

    return run


async def _send_two(kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions) -> list[int]:
    """Two messages of one municipality: the first with a row the rules drop, the second
    with a correction of the first, an identical resend of one of its notifications (not
    stored again), the end of its temporary stop, and a row whose warning only the history
    gave (the brukerNr's person seen under another brukerNr). Returns their message ids."""
    rng = random.Random(19)
    p1, p2 = person(rng, "B-1"), Person(**{**person(rng, "B-2", "2").__dict__, "bydel": "030101"})
    start1 = Notif(1, p1, (Event("TjenesteStart", "T1", "2018-01-10"),))
    start2 = Notif(2, p2, (Event("TjenesteStart", "T2", "2018-02-01", tjeneste_type="18"),))
    stop = Notif(3, p1, (Event("MidlertidigStoppFra", "T1", "2018-03-01", stopp_id="S1"),))
    bad_fid = p1.fid[:-1] + str((int(p1.fid[-1]) + 1) % 10)
    # typeID 4 is no code (handling 2: dropped); a wrong fid alone is kept (issue 21)
    bad = Notif(4, Person("B-bad", bad_fid, "4"), (Event("TjenesteStart", "T4", "2018-04-01"),))
    first = await send(kpr, pki, sessions, melding_xml([start1, start2, stop, bad]))
    assert first.status == "3", first.rules
    fix1 = Notif(5, p1, (Event("TjenesteStart", "T1", "2018-01-11"),), status="M", ref=start1.guid)
    back = Notif(6, p1, (Event("MidlertidigStoppTil", "T1", "2018-03-20", stopp_id="S1"),))
    moved = Notif(7, Person("B-new", p1.fid), (Event("TjenesteSlutt", "T1", "2018-05-01"),))
    # start2 second, as in the first message: the same Bruker attributes, an identical resend
    second = await send(kpr, pki, sessions, melding_xml([fix1, start2, back, moved]))
    assert second.status == "1", second.rules
    assert "IPL-BRUKERNR-CHANGED" in second.rules
    async with sessions() as s:
        ids = list(await s.scalars(select(Message.id).order_by(Message.id)))
        assert await s.scalar(select(func.count()).select_from(Notifikasjon)) == 6
    return ids


_NOT_COMPARED = {"id", "feed_seq", "updated_at", "melding_id", "notifikasjon_id", "fid"}


def _values(row: Base) -> dict[str, Any]:
    attrs = inspect(row).mapper.column_attrs
    return {a.key: getattr(row, a.key) for a in attrs if a.key not in _NOT_COMPARED}


async def _register(sessions: Sessions) -> dict[str, list[dict[str, Any]]]:
    """Every register row, by what identifies it across a rebuild (the message, positions)
    instead of row ids; fids opened (sealing draws a fresh nonce each time)."""
    async with sessions() as s:
        meldinger = {m.id: m for m in await s.scalars(select(Melding))}
        message_of = {i: m.message_id for i, m in meldinger.items()}
        notifs = {n.id: n for n in await s.scalars(select(Notifikasjon))}
        out: dict[str, list[dict[str, Any]]] = {
            "melding": [_values(m) for m in meldinger.values()],
            "kontaktperson": [
                {**_values(k), "message": message_of[k.melding_id]}
                for k in await s.scalars(select(Kontaktperson))
            ],
            "melding_kommune": [
                {**_values(k), "message": message_of[k.melding_id]}
                for k in await s.scalars(select(MeldingKommune))
            ],
            "notifikasjon": [
                {**_values(n), "message": message_of[n.melding_id]} for n in notifs.values()
            ],
            "hendelse": [
                {
                    **_values(h),
                    "fid": PROTECTOR.open_optional(h.fid),
                    "notification": (
                        message_of[notifs[h.notifikasjon_id].melding_id],
                        notifs[h.notifikasjon_id].position,
                    ),
                }
                for h in await s.scalars(select(Hendelse))
            ],
            "episode": [_values(e) for e in await s.scalars(select(Episode))],
        }
    return {name: sorted(rows, key=repr) for name, rows in out.items()}


async def _ids_and_seqs(sessions: Sessions) -> list[tuple[Any, ...]]:
    async with sessions() as s:
        rows = await s.execute(
            select(Melding.id, Melding.message_id, Melding.feed_seq).order_by(Melding.id)
        )
        return [tuple(r) for r in rows.all()]


async def _forget_register(sessions: Sessions) -> None:
    """As before the register store: no melding (its rows cascade), no episodes."""
    async with sessions() as s:
        await s.execute(delete(Melding))
        await s.execute(delete(Episode))
        await s.commit()
        for model in (Melding, Notifikasjon, Hendelse, Kontaktperson, Episode):
            assert await s.scalar(select(func.count()).select_from(model)) == 0


async def test_backfill_rebuilds_what_the_intake_stored(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, backfill: Any
) -> None:
    await _send_two(kpr, pki, sessions)
    written = await _register(sessions)
    assert len(written["melding"]) == 2
    assert any(n["funn"] for n in written["notifikasjon"])  # the history's warning is kept
    assert written["episode"]
    await _forget_register(sessions)

    dry = await backfill("--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output
    assert await _ids_and_seqs(sessions) == []  # nothing written

    done = await backfill()
    assert done.exit_code == 0, done.output
    assert await _register(sessions) == written
    seqs = await _ids_and_seqs(sessions)
    assert [s for _, _, s in seqs] == [3, 4]  # the feed hands them on again, in order

    again = await backfill("--environment", "pilot")
    assert again.exit_code == 0, again.output
    assert await _ids_and_seqs(sessions) == seqs
    assert await _register(sessions) == written


async def test_a_message_whose_request_retention_removed_is_reported(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, backfill: Any
) -> None:
    first, second = await _send_two(kpr, pki, sessions)
    written = await _register(sessions)
    await _forget_register(sessions)
    async with sessions() as s:
        await s.execute(
            update(Message)
            .where(Message.id == first)
            .values(raw=None, raw_ref="removed by retention 2019-01-01 (KPR_RETENTION_RAW_DAYS)")
        )
        await s.commit()

    result = await backfill()
    assert result.exit_code == 1, result.output
    assert f"message {first} " in result.output
    assert "raw removed" in result.output
    assert "removed by retention 2019-01-01" in result.output
    assert f"message {second} " not in result.output
    rebuilt = await _register(sessions)
    assert [m["message_id"] for m in rebuilt["melding"]] == [second]
    assert rebuilt["notifikasjon"] == [n for n in written["notifikasjon"] if n["message"] == second]

    seqs = await _ids_and_seqs(sessions)
    again = await backfill()
    assert again.exit_code == 1  # still not recovered, and said again
    assert f"message {first} " in again.output
    assert await _ids_and_seqs(sessions) == seqs


def test_a_stored_request_opens_with_any_of_the_keyrings_keys_and_not_without(
    pki: DevPki,
) -> None:
    rng = random.Random(7)
    rows = [
        Notif(1, person(rng, "B-1"), (Event("TjenesteStart", "T1", "2018-01-10"),)),
        Notif(2, person(rng, "B-2"), (Event("TjenesteSlutt", "T2", "2018-02-01"),)),
    ]
    built = epj_message(pki, head(melding_xml(rows)), to_her=str(PILOT_HER))
    request = Request(
        content_type=built.content_type,
        received_at=dt.datetime.now(dt.UTC),
        environment="pilot",
        from_her=DEMO_HER,
        to_her=str(PILOT_HER),
        party_her=DEMO_HER,
    )
    settings = Settings(_env_file=None, **REGISTER_SETTINGS)  # type: ignore[arg-type]
    # a key rolled over since is listed first: the one the message was encrypted to still opens it
    rolled = Reader.of(settings, (pki.municipality.encryption, pki.kpr.encryption))
    reading = read_request(built.body, request, rolled)
    assert reading.content is not None, reading.detail
    assert [n.guid for n in reading.content.notifications] == [n.guid for n in rows]
    without = read_request(built.body, request, Reader.of(settings, (pki.municipality.encryption,)))
    assert (without.content, without.recovery) == (None, Recovery.UNDECRYPTABLE)
