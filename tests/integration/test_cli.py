"""The CLI against a real database: db, parties and tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli.root import app

runner = CliRunner()


@pytest.fixture
def cli_env(clean_database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("KPR_DATABASE_URL", clean_database_url)
    monkeypatch.setenv("KPR_ENV", "test")
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    return clean_database_url


def test_db_current_shows_head(cli_env: str) -> None:
    result = runner.invoke(app, ["db", "current"])
    assert result.exit_code == 0, result.output
    assert "(head)" in result.output


def test_parties_add_then_list(cli_env: str) -> None:
    r = runner.invoke(
        app,
        [
            "parties",
            "add",
            "--her-id",
            "8000001",
            "--name",
            "Oslo",
            "--kommune",
            "0301",
            "--email",
            "iplos@oslo.example",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "added party HER 8000001" in r.output
    r = runner.invoke(
        app,
        ["parties", "add", "--her-id", "8000001", "--name", "Oslo kommune", "--kommune", "0302"],
    )
    assert "updated party" in r.output
    r = runner.invoke(app, ["parties", "list"])
    assert "8000001" in r.output
    assert "0301 0302" in r.output


def test_parties_add_refuses_bad_orgnr(cli_env: str) -> None:
    r = runner.invoke(app, ["parties", "add", "--her-id", "1", "--name", "x", "--orgnr", "123"])
    assert r.exit_code == 2
    assert "organisation number '123'" in r.output


def test_parties_import_real_cpa(cli_env: str, reference_dir: Path) -> None:
    r = runner.invoke(app, ["parties", "import", str(reference_dir / "cpa" / "nav-qass-35065.xml")])
    assert r.exit_code == 0, r.output
    assert "imported 2 parties: 2 added, 0 updated" in r.output
    r = runner.invoke(app, ["parties", "import", str(reference_dir / "cpa" / "nav-qass-35065.xml")])
    assert "0 added, 2 updated" in r.output


def test_tokens_lifecycle(cli_env: str) -> None:
    r = runner.invoke(app, ["tokens", "create", "ops", "--role", "operator"])
    assert r.exit_code == 0, r.output
    assert r.output.strip().startswith("kpr_")
    r = runner.invoke(app, ["tokens", "create", "ops", "--role", "operator"])
    assert r.exit_code == 2
    assert "exists already" in r.output
    r = runner.invoke(app, ["tokens", "create", "x", "--role", "admin"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["tokens", "revoke", "ops"])
    assert r.exit_code == 0
    r = runner.invoke(app, ["tokens", "revoke", "nobody"])
    assert r.exit_code == 1
    r = runner.invoke(app, ["tokens", "list"])
    assert "ops" in r.output
    assert "kpr_" not in r.output


def test_invalid_configuration_is_reported_not_raised(
    cli_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KPR_RECEIVERS", "131725=staging")
    r = runner.invoke(app, ["tokens", "list"])
    assert r.exit_code == 2
    assert "unknown receiver environment 'staging'" in r.output
