"""Which hosts count as loopback, and when `serve` refuses to start (app/exposure.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.auth.tokens import parse_expiry
from app.exposure import is_loopback, metrics_allowed, serve_refusal
from app.platform.settings import Env, Settings


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost", "LOCALHOST"]
)
def test_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "10.0.0.1", "kpr.example.org", "", None, "testclient"]
)
def test_not_loopback(host: str | None) -> None:
    assert not is_loopback(host)


def test_serve_refuses_only_beyond_loopback_with_the_default_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KPR_ENV", raising=False)
    default = Settings(_env_file=None)
    assert not default.env_explicit
    assert serve_refusal("127.0.0.1", default) is None
    assert "KPR_ENV" in (serve_refusal("0.0.0.0", default) or "")
    for env in (Env.DEV, Env.TEST):
        assert serve_refusal("0.0.0.0", Settings(_env_file=None, env=env)) is None


def test_metrics_are_open_without_a_token() -> None:
    assert metrics_allowed(Settings(_env_file=None), None)
    assert metrics_allowed(Settings(_env_file=None, metrics_token=""), None)


def test_expiry_as_days_or_a_date() -> None:
    now = datetime(2026, 12, 5, 12, tzinfo=UTC)
    assert parse_expiry("365d", now) == now + timedelta(days=365)
    assert parse_expiry(" 2027-06-30 ", now) == datetime(2027, 6, 30, 22, tzinfo=UTC)
    with pytest.raises(ValueError, match="has passed"):
        parse_expiry("2026-12-04", now)


def test_expiry_is_at_most_five_years_ahead() -> None:
    now = datetime(2026, 12, 5, 12, tzinfo=UTC)
    assert parse_expiry("1830d", now) == now + timedelta(days=1830)
    with pytest.raises(ValueError, match="at most 1830 days"):
        parse_expiry("99999d", now)
    with pytest.raises(ValueError, match="at most 1830 days"):
        parse_expiry("2300-01-01", now)
