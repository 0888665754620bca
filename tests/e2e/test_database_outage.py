"""A throw-away PostgreSQL stopped under load behind a real uvicorn process: the readiness
probe says so, every message gets either its stored reply or a temporary DeliveryFailure
(never a 500, never half-stored), and the service recovers by itself when the database is
back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.dev.client import ReadReply
from app.ebxml.build import BuiltMessage
from app.models import Message, MessageDedup
from app.platform.db import create_engine, session_factory
from bench.pgcluster import PgCluster
from tests.e2e.processes import Municipality, pg_cluster, prepare, start
from tests.integration.messages import assert_signed_ok_reply

pytestmark = pytest.mark.e2e
__all__ = ["pg_cluster"]
DEADLINE_SECONDS = 120.0


def _is_delivery_failure(reply: ReadReply) -> bool:
    header = reply.header
    return (
        header is not None
        and header.action == "MessageError"
        and [(e.error_code, e.severity) for e in header.errors] == [("DeliveryFailure", "Warning")]
    )


async def _post(client: httpx.AsyncClient, built: BuiltMessage) -> httpx.Response:
    return await client.post("/ebms", content=built.body, headers=built.http_headers)


async def _until_ready(client: httpx.AsyncClient, status: int) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        try:
            if (await client.get("/readyz")).status_code == status:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    pytest.fail(f"/readyz never answered {status}")


async def test_a_database_outage_gives_temporary_errors_and_recovers_without_restart(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    env = prepare(tmp_path, KPR_DATABASE_URL=pg_cluster.url)
    server = start(env, tmp_path)
    muni = Municipality.from_pki(tmp_path / "pki")
    messages = [muni.message() for _ in range(10)]
    acked: dict[str, bytes] = {}
    retry: list[BuiltMessage] = []
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=120.0) as client:
            first = await _post(client, messages[0])
            ok = muni.read(first.content, first.headers["content-type"])
            assert_signed_ok_reply(ok, messages[0].message_id)
            acked[messages[0].message_id] = first.content

            load = asyncio.gather(*(_post(client, m) for m in messages[1:8]))
            await asyncio.sleep(0)  # let the load start before the database goes
            await asyncio.to_thread(pg_cluster.stop, "immediate")
            for built, response in zip(messages[1:8], await load, strict=True):
                assert response.status_code == 200, response.text[:300]
                reply = muni.read(response.content, response.headers["content-type"])
                if _is_delivery_failure(reply):
                    retry.append(built)
                else:
                    assert_signed_ok_reply(reply, built.message_id)
                    acked[built.message_id] = response.content

            await _until_ready(client, 503)
            ready = (await client.get("/readyz")).json()
            assert ready["database"] == "unreachable"
            during = await _post(client, messages[8])
            assert during.status_code == 200
            assert _is_delivery_failure(muni.read(during.content, during.headers["content-type"]))
            retry.append(messages[8])

            await asyncio.to_thread(pg_cluster.start)
            await _until_ready(client, 200)
            # The sender's MSH retries: each is processed in full (no claim was left behind).
            for built in [*retry, messages[9]]:
                response = await _post(client, built)
                reply = muni.read(response.content, response.headers["content-type"])
                assert_signed_ok_reply(reply, built.message_id)
                acked[built.message_id] = response.content
            # An acknowledged message sent again gets the very reply it got.
            again = await _post(client, messages[0])
            assert again.content == acked[messages[0].message_id]
    finally:
        server.stop()
    assert server.stopped_cleanly()

    engine = create_engine(pg_cluster.url)
    try:
        async with session_factory(engine)() as s:
            stored_ok = set(
                await s.scalars(select(Message.ebms_message_id).where(Message.status == "OK"))
            )
            unfinished = await s.scalar(
                select(func.count()).select_from(Message).where(Message.completed_at.is_(None))
            )
            claims = await s.scalar(select(func.count()).select_from(MessageDedup))
    finally:
        await engine.dispose()
    assert set(acked) == stored_ok
    assert unfinished == 0
    assert claims == len(acked)
