"""The body gate's bookkeeping (app/bodies.py); the gate against real slow clients is
tests/integration/test_intake_slow_clients.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from app import bodies
from app.bodies import BodyGate, BodySpool
from app.platform.settings import Settings


def test_reservations_are_released_once_and_a_chunked_body_grows_into_the_budget() -> None:
    """The reservations alone: released twice is released once; a chunked body grows its
    reservation and is refused (reserving nothing) past the budget."""
    gate = BodyGate(max_bodies=2, budget_bytes=100)
    first = gate.admit(60)
    chunked = gate.admit(None)
    with pytest.raises(bodies.Refused) as too_many:
        gate.admit(None)
    assert too_many.value.reason == "receiving"
    chunked.grow(30)
    assert gate.spooled_bytes == 90
    with pytest.raises(bodies.Refused) as full:
        chunked.grow(50)
    assert full.value.reason == "budget"
    assert gate.spooled_bytes == 90
    first.received()
    with pytest.raises(bodies.Refused):  # a slot is free, 40 bytes are not
        gate.admit(40)
    chunked.release()
    chunked.release()
    first.release()
    assert (gate.receiving, gate.spooled_bytes) == (0, 0)


def test_the_body_settings_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(_env_file=None)
    assert s.max_receiving_bodies == 32
    assert s.spool_budget_bytes == 512 * 1024 * 1024
    assert s.body_timeout_seconds == 120.0
    assert s.spool_dir is None
    monkeypatch.setenv("KPR_MAX_RECEIVING_BODIES", "8")
    monkeypatch.setenv("KPR_SPOOL_BUDGET_BYTES", str(100 * 1024 * 1024))
    monkeypatch.setenv("KPR_BODY_TIMEOUT_SECONDS", "30")
    monkeypatch.setenv("KPR_SPOOL_DIR", "/var/spool/kpr")
    s = Settings(_env_file=None)
    assert (s.max_receiving_bodies, s.spool_budget_bytes) == (8, 100 * 1024 * 1024)
    assert s.body_timeout_seconds == 30.0
    assert s.spool_dir == Path("/var/spool/kpr")
    gate = BodyGate.for_settings(s, CollectorRegistry())
    assert (gate.max_bodies, gate.budget_bytes, gate.spool_dir) == (
        8,
        100 * 1024 * 1024,
        s.spool_dir,
    )


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("KPR_MAX_RECEIVING_BODIES", "0", "greater than 0"),
        ("KPR_BODY_TIMEOUT_SECONDS", "0", "greater than 0"),
        ("KPR_SPOOL_BUDGET_BYTES", "1000", "is smaller than KPR_MAX_MESSAGE_BYTES"),
    ],
)
def test_bad_body_settings_get_a_specific_message(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings(_env_file=None)


def test_a_body_past_the_memory_threshold_is_a_private_file_removed_on_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bodies, "MEMORY_BYTES", 8)
    spool = BodySpool(tmp_path)
    spool.write(b"1234")
    assert list(tmp_path.iterdir()) == []  # in memory so far
    spool.write(b"56789")
    [path] = tmp_path.iterdir()
    assert path.name.startswith("kpr-body-")
    assert path.name.endswith(".part")
    assert path.stat().st_mode & 0o777 == 0o600
    spool.file.seek(0)
    assert spool.file.read() == b"123456789"
    spool.close()
    assert list(tmp_path.iterdir()) == []
