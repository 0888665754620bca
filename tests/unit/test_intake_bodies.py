"""The body gate's bookkeeping (app/intake/bodies.py); the gate against real slow clients is
tests/integration/test_intake_slow_clients.py."""

from __future__ import annotations

import pytest

from app.intake import bodies
from app.intake.bodies import BodyGate


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
