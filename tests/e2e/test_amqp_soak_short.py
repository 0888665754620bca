"""The AMQP crash soak's short form (`python -m bench.amqp_soak` runs the long one): the
listener SIGKILLed a few times while a municipality sends through the local RabbitMQ, then
every check of bench/amqp_soak.py: every message answered with one AppRec, byte for byte the
same on every resend, stored once, nothing dead-lettered, nothing left in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.amqp_soak import soak

# the second tier (`make test-all`): real processes and the broker, about a minute
pytestmark = [pytest.mark.broker, pytest.mark.e2e, pytest.mark.slow]


def test_a_short_amqp_soak_keeps_every_promise(tmp_path: Path) -> None:
    report = soak(kills=4, messages=30, max_seconds=40.0, workdir=tmp_path, seed=5)
    assert report["violations"] == []
    assert report["kills"] == 4
    assert report["messages"] > 30  # resends included
    assert report["answers"] >= report["messages"]
