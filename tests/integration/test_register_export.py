"""`kpr-mottak export` (issue 19, docs/register-feed.md) on both databases: one file per table,
every attribute of every accepted notification as sent, typed Parquet columns, CSV as the
house writes it, and identifiers only with --with-fid (access-logged)."""

from __future__ import annotations

import csv
import io
import random
from datetime import datetime
from pathlib import Path

import anyio
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner, Result

from app.cli.root import app
from app.content.calendar import OSLO
from app.dev.devpki import DevPki
from app.models import AccessLog
from app.platform.settings import Settings
from app.register.export import TABLES
from app.register.models import Episode
from tests.integration.conftest import TEST_HER
from tests.integration.register_roundtrip import fids_of, from_tables, sent, varied
from tests.integration.test_intake_history import send
from tests.protector import PROTECTOR, REGISTER_SETTINGS
from tests.register_messages import melding_xml

Sessions = async_sessionmaker[AsyncSession]
runner = CliRunner()
FILES = [
    "melding",
    "kontaktperson",
    "melding_kommune",
    "notifikasjon",
    "hendelse",
    "episode",
]


@pytest.fixture
def kpr(environments: httpx.AsyncClient) -> httpx.AsyncClient:
    return environments


@pytest.fixture
def cli_env(settings_with_pki: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("KPR_DATABASE_URL", settings_with_pki.database_url)
    monkeypatch.setenv("KPR_ENV", "test")
    monkeypatch.setenv("COLUMNS", "250")  # rich's lines unwrapped
    monkeypatch.setenv("KPR_REGISTER_KEYS", str(REGISTER_SETTINGS["register_keys"]))
    monkeypatch.setenv("KPR_REGISTER_HMAC_KEY", str(REGISTER_SETTINGS["register_hmac_key"]))
    return settings_with_pki


async def export(out: Path, *args: str, year: int | None = None) -> Result:
    """The command as an operator runs it (in a thread: it runs its own event loop)."""
    argv = [
        "export",
        "--year",
        str(year or datetime.now(OSLO).year),
        "--environment",
        "pilot",
        "--out",
        str(out),
        *args,
    ]
    result = await anyio.to_thread.run_sync(lambda: runner.invoke(app, argv))
    assert result.exit_code == 0, result.output
    return result


def read_parquet(directory: Path, name: str) -> pa.Table:
    return pq.read_table(directory / f"{name}.parquet")


def read_csv(directory: Path, name: str) -> list[dict[str, str]]:
    raw = (directory / f"{name}.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM
    text = raw.decode("utf-8-sig")
    assert "\r\n" in text
    assert "\n" not in text.replace("\r\n", "")
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))


async def send_year(kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions) -> bytes:
    rng = random.Random(23)
    content = melding_xml(varied(rng), lokalident="lok-export")
    answer = await send(kpr, pki, sessions, content)
    assert answer.status == "1", answer.ots
    # another environment's message is not in the pilot's files
    other = melding_xml(varied(rng, "X"))
    assert (await send(kpr, pki, sessions, other, to=TEST_HER)).status == "1"
    return content


async def test_parquet_holds_every_attribute_as_sent_in_typed_columns(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, cli_env: Settings, tmp_path: Path
) -> None:
    content = await send_year(kpr, pki, sessions)
    with_fid, without = tmp_path / "with", tmp_path / "without"
    result = await export(with_fid, "--with-fid")
    assert "notifikasjon.parquet: 7 rows" in result.output
    await export(without)
    assert sorted(p.name for p in _files(with_fid)) == sorted(f"{f}.parquet" for f in FILES)

    tables = {name: read_parquet(with_fid, name) for name in FILES}
    rows = {name: t.to_pylist() for name, t in tables.items()}
    assert from_tables(
        rows["melding"], rows["notifikasjon"], rows["hendelse"], with_fid=True
    ) == sent(content)
    bare = {name: read_parquet(without, name).to_pylist() for name in FILES}
    assert from_tables(
        bare["melding"], bare["notifikasjon"], bare["hendelse"], with_fid=False
    ) == sent(content, with_fid=False)
    assert "fid" not in read_parquet(without, "hendelse").schema.names
    assert [r["fid_hmac"] for r in bare["hendelse"]] == [
        PROTECTOR.digest(r["fid"]) for r in rows["hendelse"]
    ]
    assert {r["environment"] for name in FILES for r in rows[name] if "environment" in r} == {
        "pilot"
    }
    assert [r["kommune_nr"] for r in rows["melding_kommune"]] == ["0301"]
    assert len(rows["kontaktperson"]) == 4

    # typed columns: dates, integers, UTC timestamps; everything sent as a string
    schema = {name: {f.name: f.type for f in t.schema} for name, t in tables.items()}
    assert schema["hendelse"]["hendelse_dato_tolket"] == pa.date32()
    assert schema["hendelse"]["hendelse_dato"] == pa.string()  # as sent ("+01:00" and all)
    assert schema["notifikasjon"]["notifikasjon_lope_nr_tolket"] == pa.int64()
    assert schema["notifikasjon"]["notifikasjon_guid"] == pa.string()
    assert schema["melding"]["received_at"] == pa.timestamp("us", tz="UTC")
    assert schema["melding"]["feed_seq"] == pa.int64()
    assert schema["episode"]["start_dato"] == pa.date32()
    assert schema["episode"]["midlertidige_stopp"] == pa.string()
    assert all(t == pa.int64() for n in FILES for c, t in schema[n].items() if c == "id")

    # the episodes of the keys the exported events name, as stored
    async with sessions() as s:
        stored = (await s.scalars(select(Episode).where(Episode.environment == "pilot"))).all()
    assert sorted(r["id"] for r in rows["episode"]) == sorted(e.id for e in stored)
    stop = next(r for r in rows["episode"] if r["midlertidige_stopp"] != "[]")
    assert '"midlertidig_stopp_id": "R-S1"' in stop["midlertidige_stopp"]

    # no identifier without --with-fid, in the bytes or in the values; with it, all of them
    fids = fids_of(varied(random.Random(23)))
    assert len(fids) == 3
    assert _found(without, fids) == set()
    assert _found(with_fid, fids) == fids


def _files(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def _found(directory: Path, fids: set[str]) -> set[str]:
    found = set()
    for path in directory.iterdir():
        raw = path.read_bytes()
        values = str(pq.read_table(path).to_pylist()) if path.suffix == ".parquet" else ""
        found |= {f for f in fids if f.encode() in raw or f in values}
    return found


async def test_csv_holds_every_attribute_as_sent(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, cli_env: Settings, tmp_path: Path
) -> None:
    content = await send_year(kpr, pki, sessions)
    with_fid, without = tmp_path / "with", tmp_path / "without"
    await export(with_fid, "--format", "csv", "--with-fid")
    await export(without, "--format", "csv")
    assert sorted(p.name for p in _files(without)) == sorted(f"{f}.csv" for f in FILES)

    rows = {name: read_csv(with_fid, name) for name in FILES}
    assert from_tables(
        rows["melding"], rows["notifikasjon"], rows["hendelse"], with_fid=True, empty=""
    ) == sent(content)
    bare = {name: read_csv(without, name) for name in FILES}
    assert from_tables(
        bare["melding"], bare["notifikasjon"], bare["hendelse"], with_fid=False, empty=""
    ) == sent(content, with_fid=False)
    header = (without / "hendelse.csv").read_bytes().decode("utf-8-sig").split("\r\n")[0]
    assert header.split(";") == [c.name for c in TABLES["hendelse"].c if c.name != "fid"]
    assert rows["melding"][0]["received_at"].endswith("+00:00")
    assert rows["hendelse"][0]["hendelse_dato_tolket"] == "2018-01-10"
    fids = fids_of(varied(random.Random(23)))
    assert _found(without, fids) == set()
    assert _found(with_fid, fids) == fids


async def test_only_an_export_with_fids_is_access_logged(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, cli_env: Settings, tmp_path: Path
) -> None:
    await send_year(kpr, pki, sessions)

    async def logged() -> list[AccessLog]:
        async with sessions() as s:
            found = await s.scalars(select(AccessLog).where(AccessLog.action == "register.export"))
            return list(found)

    await export(tmp_path / "a")
    assert await logged() == []
    await export(tmp_path / "b", "--format", "csv", "--with-fid")
    (row,) = await logged()
    assert row.actor.startswith("cli:")
    assert row.role == "operator"
    assert "--with-fid" in row.resource
    assert "--environment pilot" in row.resource


async def test_another_years_window_exports_empty_files(
    kpr: httpx.AsyncClient, pki: DevPki, sessions: Sessions, cli_env: Settings, tmp_path: Path
) -> None:
    await send_year(kpr, pki, sessions)
    out = tmp_path / "2018"
    result = await export(out, year=2018)
    assert "notifikasjon.parquet: 0 rows" in result.output
    assert all(read_parquet(out, name).num_rows == 0 for name in FILES)
    assert sorted(p.name for p in _files(out)) == sorted(f"{f}.parquet" for f in FILES)


def test_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    from app.register.export import ExportFormat, columns, open_writer

    for fmt in ExportFormat:
        path = tmp_path / f"t.{fmt.value}"
        writer = open_writer(fmt, path, columns("melding_kommune", with_fid=False), None)
        writer.write([(1, 1, "0301")])
        writer.close()
        assert path.stat().st_mode & 0o777 == 0o600
