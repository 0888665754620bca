"""`kpr-mottak calendar extend|remove|list|show` against a real database (issue 21)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli.root import app
from app.deadlines import repository as deadline_repo
from app.models import AccessLog
from app.platform.db import create_engine, session_factory

runner = CliRunner()


@pytest.fixture
def cli_env(clean_database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("KPR_DATABASE_URL", clean_database_url)
    monkeypatch.setenv("KPR_ENV", "test")
    monkeypatch.setenv("KPR_PKI_DIR", str(tmp_path / "pki"))
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    return clean_database_url


def _stored(url: str) -> tuple[list[tuple[str, int, str]], list[tuple[str, str, str | None]]]:
    async def main() -> tuple[list[tuple[str, int, str]], list[tuple[str, str, str | None]]]:
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as s:
                granted = [
                    (e.kommune_nr, e.year, e.until.isoformat())
                    for e in await deadline_repo.extensions(s)
                ]
                logged = (
                    await s.execute(
                        select(AccessLog.action, AccessLog.role, AccessLog.kommune_nr).order_by(
                            AccessLog.id
                        )
                    )
                ).all()
                return granted, [(a, r, k) for a, r, k in logged]
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_extend_list_show_and_remove(cli_env: str) -> None:
    result = runner.invoke(
        app, ["calendar", "extend", "--kommune", "0301", "--year", "2018", "--until", "2019-02-15"]
    )
    assert result.exit_code == 0, result.output
    assert "deadline 2019-02-15, correction deadline 2019-03-21" in result.output
    listed = runner.invoke(app, ["calendar", "list"])
    assert listed.exit_code == 0, listed.output
    assert "0301" in listed.output
    assert "2019-02-15" in listed.output
    assert "2019-01-15" in listed.output  # the ordinary deadline beside it
    shown = runner.invoke(app, ["calendar", "show", "--year", "2018", "--kommune", "0301"])
    assert shown.exit_code == 0, shown.output
    assert "deadline (kommune 0301): 2019-02-15" in shown.output
    other = runner.invoke(app, ["calendar", "show", "--year", "2018", "--kommune", "1103"])
    assert "deadline (kommune 1103): 2019-01-15" in other.output
    # set again: moved, not added
    moved = runner.invoke(
        app, ["calendar", "extend", "--kommune", "0301", "--year", "2018", "--until", "2019-02-20"]
    )
    assert moved.exit_code == 0, moved.output
    granted, logged = _stored(cli_env)
    assert granted == [("0301", 2018, "2019-02-20")]
    assert logged == [("calendar.extend", "operator", "0301")] * 2
    removed = runner.invoke(app, ["calendar", "remove", "--kommune", "0301", "--year", "2018"])
    assert removed.exit_code == 0, removed.output
    assert _stored(cli_env)[0] == []
    again = runner.invoke(app, ["calendar", "remove", "--kommune", "0301", "--year", "2018"])
    assert again.exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kommune", "301", "--year", "2018", "--until", "2019-02-15"], "four digits"),
        (["--kommune", "0301", "--year", "2018", "--until", "2019-01-10"], "not after"),
        (["--kommune", "0301", "--year", "18", "--until", "2019-02-15"], "reporting year"),
    ],
)
def test_extend_refuses_what_it_cannot_mean(cli_env: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["calendar", "extend", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert _stored(cli_env)[0] == []


@pytest.mark.parametrize(
    ("kommune", "year", "said"),
    [
        ("9999", 2018, "9999 is not a municipality in 2018's list"),  # no such number
        ("3001", 2024, "(now 3101 Halden)"),  # Halden's number before 2024
    ],
)
def test_extend_refuses_a_number_the_year_does_not_have(
    cli_env: str, kommune: str, year: int, said: str
) -> None:
    # Found trying it from outside: a mistyped number was granted and listed, matching no
    # message ever.
    result = runner.invoke(
        app,
        [
            "calendar",
            "extend",
            "--kommune",
            kommune,
            "--year",
            str(year),
            "--until",
            f"{year + 1}-02-15",
        ],
    )
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())
    assert _stored(cli_env) == ([], [])
