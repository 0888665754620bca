"""`python -m bench.amqp` on a tiny input: both transports answer every message with an OK
AppRec and the table is printed (no timing is asserted)."""

from __future__ import annotations

import pytest

from bench.amqp import main

# the second tier (`make test-all`): two uvicorn processes and the local RabbitMQ
pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_the_amqp_bench_runs_both_transports(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--messages", "3", "--notifications", "0"]) == 0
    printed = capsys.readouterr().out
    assert "AMQP outcomes: 3 apprec 1" in printed
    assert "HTTP outcomes: 3 apprec 1" in printed
    assert "(AMQP / HTTP; goal >= 1.0 in msg/s)" in printed
