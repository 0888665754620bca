"""Schemathesis against the real server: every operation in our OpenAPI document, with data
generated from the schema (and an operator token), never gets a server error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.e2e.conftest import Server

# the second tier (`make test-all`): about 1 000 calls at today's depth
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@schemathesis.serializer("multipart/related")
def _raw_body(ctx: Any, value: Any) -> bytes:
    # POST /ebms takes arbitrary bytes: send what was generated as they are.
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


def _token(server: Server, role: str) -> str:
    env = {**os.environ, "KPR_DATABASE_URL": server.database_url, "KPR_ENV": "dev"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "kpr-mottak"), "tokens", "create",
         f"schemathesis-{role.replace(':', '-')}", "--role", role],
        env=env, capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout.decode().strip()


@pytest.mark.parametrize("role", ["operator", "municipality:0301", "register"])
def test_no_operation_answers_with_a_server_error(server: Server, role: str) -> None:
    """With an operator token, a municipality token (its 403/404 paths too) and the register
    loader's (the feed's cursors and confirmations)."""
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    headers = {"Authorization": f"Bearer {_token(server, role)}"}
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {op.path for op in operations} >= {
        "/ebms",
        "/healthz",
        "/api/v1/parties",
        "/api/v1/messages",
        "/api/v1/kommuner/{kommune_nr}/feilliste",
        "/api/v1/coverage",
    }
    statuses: dict[str, set[int]] = {}

    def run(operation: Any) -> None:
        label = operation.label

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            response = case.call(headers=headers, timeout=30)
            statuses.setdefault(label, set()).add(response.status_code)
            assert response.status_code < 500, (label, response.text[:300])

        check()

    for operation in operations:
        run(operation)
    assert set(statuses) == {op.label for op in operations}
    # The token works and the intake answers whatever bytes arrive with an ebXML reply.
    if role == "operator":
        assert 200 in statuses["GET /api/v1/parties"]
        assert 200 in statuses["GET /api/v1/coverage"]
    elif role == "register":
        assert statuses["GET /api/v1/messages"] == {403}
        assert 200 in statuses["GET /api/v1/register/notifications"]
    else:
        assert statuses["GET /api/v1/parties"] == {403}
        assert 200 in statuses["GET /api/v1/messages"]
    assert statuses["POST /ebms"] <= {200, 413}
