"""`kpr-mottak retention run` and `kpr-mottak keys check` against a real database."""

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
    monkeypatch.setenv("KPR_PKI_DIR", str(tmp_path / "pki"))
    monkeypatch.setenv("COLUMNS", "250")  # rich output unwrapped, however long tmp_path is
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    return clean_database_url


def test_retention_run_reports_each_category(cli_env: str) -> None:
    result = runner.invoke(app, ["retention", "run"])
    assert result.exit_code == 0, result.output
    for category in ("raw:", "finding_subjects:", "history:"):
        assert category in result.output


def test_retention_run_skips_a_category_set_to_zero(
    cli_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KPR_RETENTION_HISTORY_DAYS", "0")
    result = runner.invoke(app, ["retention", "run"])
    assert result.exit_code == 0, result.output
    assert "history:" not in result.output


def test_keys_check_refuses_a_decryption_key_that_does_not_load(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "bad.key").write_text("not a key")
    (keys / "bad.crt").write_text("not a certificate")
    monkeypatch.setenv("KPR_DECRYPTION_KEYS_DIR", str(keys))
    result = runner.invoke(app, ["keys", "check"])
    assert result.exit_code == 1
    assert "bad.key" in result.output


def test_keys_reload_without_a_pid_says_how(cli_env: str) -> None:
    result = runner.invoke(app, ["keys", "reload"])
    assert result.exit_code == 2
    assert "KPR_PID_FILE" in result.output
