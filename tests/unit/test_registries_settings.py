"""The registries' settings (issue 23): offline by default, credentials checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.outbound import OutboundClient
from app.platform.settings import Settings
from app.registries import lookup


def test_offline_by_default() -> None:
    settings = Settings(_env_file=None)
    assert settings.ar_url is None
    assert settings.registry_cache_seconds == 3600
    assert lookup.build(settings, OutboundClient(allow_private=False), ()) is None


def test_a_missing_credentials_file_is_named() -> None:
    with pytest.raises(ValidationError, match="KPR_AR_CREDENTIALS_FILE"):
        Settings(_env_file=None, ar_credentials_file=Path("/nonexistent/ar.txt"))


def test_credentials_are_read(tmp_path: Path) -> None:
    client = OutboundClient(allow_private=False)
    basic = tmp_path / "basic.txt"
    basic.write_text("kpr:hemmelig\n")
    soap = Settings(_env_file=None, ar_url="https://ar.example/ar", ar_credentials_file=basic)
    assert lookup.build(soap, client, ()) is not None
    basic.write_text("no colon\n")
    with pytest.raises(ValueError, match="username:password"):
        lookup.build(soap, client, ())
    helseid = tmp_path / "helseid.json"
    helseid.write_text(json.dumps({"token_url": "https://helseid.example/token"}))
    rest = Settings(
        _env_file=None, ar_url="https://ar.example", ar_kind="rest", ar_credentials_file=helseid
    )
    with pytest.raises(ValueError, match="client_id is missing"):
        lookup.build(rest, client, ())
    helseid.write_text(
        json.dumps({"token_url": "https://h.example/t", "client_id": "c", "client_secret": "s"})
    )
    assert lookup.build(rest, client, ()) is not None
    with pytest.raises(ValueError, match="needs KPR_AR_CREDENTIALS_FILE"):
        lookup.build(rest.model_copy(update={"ar_credentials_file": None}), client, ())
