"""The operator's commands on the box: messages, feilliste, coverage, kommuner import,
notify remind (on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from app.cli.root import app
from app.models import AccessLog, Kommune, NotificationOutbox, Party, PartyContact, PartyKommune
from app.platform.db import create_engine, session_factory
from tests.integration.seed import FID_OSLO, Fault, add_message
from tests.protector import REGISTER_SETTINGS

runner = CliRunner()


@pytest.fixture
def cli_env(clean_database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("KPR_DATABASE_URL", clean_database_url)
    monkeypatch.setenv("KPR_ENV", "test")
    monkeypatch.setenv("COLUMNS", "250")  # rich tables unwrapped
    # the seeded rows' fids are sealed with the tests' register keys
    monkeypatch.setenv("KPR_REGISTER_KEYS", str(REGISTER_SETTINGS["register_keys"]))
    monkeypatch.setenv("KPR_REGISTER_HMAC_KEY", str(REGISTER_SETTINGS["register_hmac_key"]))
    monkeypatch.chdir(tmp_path)
    return clean_database_url


def _run_async(url: str, work: object) -> object:
    async def main() -> object:
        engine = create_engine(url)
        try:
            sessions: async_sessionmaker[AsyncSession] = session_factory(engine)
            return await work(sessions)  # type: ignore[operator]
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _seed(url: str) -> int:
    async def work(sessions: async_sessionmaker[AsyncSession]) -> int:
        m = await add_message(
            sessions,
            msg_id="MSG-CLI",
            status="OK_FEIL_I_DELMELDING",
            apprec_status="3",
            faults=[Fault(guid="g-cli", bruker_nr="B-CLI", fid=FID_OSLO)],
        )
        return m.id

    result = _run_async(url, work)
    assert isinstance(result, int)
    return result


def test_messages_list_and_show(cli_env: str) -> None:
    message_id = _seed(cli_env)
    listed = runner.invoke(app, ["messages", "list", "--kommune", "0301"])
    assert listed.exit_code == 0, listed.output
    assert "MSG-CLI" in listed.output
    assert "OK_FEIL_I_DE" in listed.output
    shown = runner.invoke(app, ["messages", "show", str(message_id)])
    assert shown.exit_code == 0, shown.output
    assert "IPL-FID-INVALID" in shown.output
    assert "receipt_built" in shown.output
    assert FID_OSLO not in shown.output
    assert runner.invoke(app, ["messages", "show", "999999"]).exit_code == 1


def test_feilliste_csv_is_logged_as_the_local_user(cli_env: str) -> None:
    _seed(cli_env)
    result = runner.invoke(
        app, ["feilliste", "0301", "--year", "2018", "--environment", "pilot", "--csv"]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout.lstrip("\ufeff")), delimiter=";"))
    assert [(r["NotifikasjonGUID"], r["BrukerNr"], r["Person-ID"]) for r in rows] == [
        ("g-cli", "B-CLI", FID_OSLO)
    ]

    async def logged(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
        async with sessions() as s:
            rows = await s.execute(select(AccessLog.actor, AccessLog.action))
            return [(a, b) for a, b in rows.all()]

    entries = _run_async(cli_env, logged)
    assert isinstance(entries, list)
    assert len(entries) == 1
    assert entries[0][0].startswith("cli:")
    assert entries[0][1] == "feilliste.read"
    table = runner.invoke(app, ["feilliste", "0301", "--year", "2018", "--environment", "pilot"])
    assert "g-cli" in table.output


def test_coverage_table(cli_env: str) -> None:
    _seed(cli_env)
    result = runner.invoke(app, ["coverage", "--year", "2018", "--environment", "pilot"])
    assert result.exit_code == 0, result.output
    assert "1 av 422 kommuner har levert" in result.output


def test_kommuner_import_loads_an_ssb_file(cli_env: str, tmp_path: Path) -> None:
    ssb = tmp_path / "ssb-klass-131-2024.csv"
    ssb.write_text(
        '"code";"parentCode";"level";"name";"shortName";"notes";"validFrom";"validTo"\n'
        '"0301";"";"1";"Oslo";;""\n"1508";"";"1";"Ålesund";;""\n"9999";"";"1";"Uoppgitt";;""\n',
        encoding="utf-8",
    )
    result = runner.invoke(app, ["kommuner", "import", str(ssb)])
    assert result.exit_code == 0, result.output
    assert "2 municipalities loaded for 2024" in result.output

    async def stored(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[int, str, str]]:
        async with sessions() as s:
            rows = await s.execute(select(Kommune.year, Kommune.kommune_nr, Kommune.name))
            return sorted((y, k, n) for y, k, n in rows.all())

    assert _run_async(cli_env, stored) == [(2024, "0301", "Oslo"), (2024, "1508", "Ålesund")]
    bad = tmp_path / "x-2024.csv"
    bad.write_text("a;b\n1;2\n", encoding="utf-8")
    assert runner.invoke(app, ["kommuner", "import", str(bad)]).exit_code == 2


def test_kommuner_import_of_the_reference_file(cli_env: str, reference_dir: Path) -> None:
    path = reference_dir / "kommuner" / "ssb-klass-131-2020.csv"
    result = runner.invoke(app, ["kommuner", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "356 municipalities loaded for 2020" in result.output


def test_notify_remind_queues_for_the_missing(cli_env: str) -> None:
    async def register(sessions: async_sessionmaker[AsyncSession]) -> None:
        async with sessions() as s:
            party = Party(her_id=8000005, name="Bergen")
            party.kommuner = [PartyKommune(kommune_nr="4601")]
            party.contacts = [PartyContact(email="bergen@kommune.example")]
            s.add(party)
            await s.commit()

    _run_async(cli_env, register)
    result = runner.invoke(app, ["notify", "remind", "--year", "2018", "--environment", "pilot"])
    assert result.exit_code == 0, result.output
    assert "1 reminders queued" in result.output

    async def queued(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
        async with sessions() as s:
            return list(await s.scalars(select(NotificationOutbox.recipient)))

    assert _run_async(cli_env, queued) == ["bergen@kommune.example"]
