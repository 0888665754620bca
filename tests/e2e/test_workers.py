"""`kpr-mottak serve --workers 2`: two uvicorn worker processes behind one socket take
messages posted at once, on SQLite (WAL and busy_timeout between processes) and on
PostgreSQL, and every message is answered and stored exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.dev.client import SendOptions, build_epj_message
from app.dev.sample import build_sample, wrap_in_msghead
from app.ebxml.build import BuiltMessage
from app.models import Message
from app.platform.db import create_engine, session_factory
from bench.pgcluster import PgCluster
from tests.e2e.conftest import _free_port, _wait_ready
from tests.e2e.processes import Municipality, pg_cluster, prepare
from tests.integration.messages import DEMO_HER

pytestmark = pytest.mark.e2e

__all__ = ["pg_cluster"]  # the fixture, imported for this module's tests

MESSAGES = 12


def _children(pid: int) -> list[int]:
    """The live child processes of `pid` (from /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def _serve(env: dict[str, str], cwd: Path) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = cwd / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "kpr-mottak"),
                "serve",
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(proc, url, log)
        # the supervisor and its two workers (plus, with spawn, multiprocessing's helper)
        assert len(_children(proc.pid)) >= 2
        yield url
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _message(municipality: Municipality, i: int) -> BuiltMessage:
    """Message `i` of the demo municipality: its own notifications (seed), løpenummer from
    1 + 10 i (posted at once, they arrive in any order: warnings at most)."""
    melding = build_sample(1 + i % 4, "0301", seed=100 + i, start_lopenr=1 + 10 * i)
    head = wrap_in_msghead(
        melding, 8000001, 131725, str(uuid.uuid4()), datetime.now(UTC).replace(microsecond=0)
    )
    return build_epj_message(
        head,
        SendOptions(from_her=DEMO_HER),
        signing=municipality.signing,
        encrypt_to=municipality.kpr_encryption,
    )


async def _post_all(url: str, municipality: Municipality) -> list[bytes]:
    built = [_message(municipality, i) for i in range(MESSAGES)]
    async with httpx.AsyncClient(base_url=url, timeout=120.0) as client:
        replies = await asyncio.gather(
            *(client.post("/ebms", content=b.body, headers=b.http_headers) for b in built)
        )
    for b, r in zip(built, replies, strict=True):
        assert r.status_code == 200, r.text[:500]
        reply = municipality.read(r.content, r.headers["content-type"])
        assert reply.findings == ()
        assert reply.header is not None
        assert reply.header.action == "APPREC", reply.header
        assert reply.header.ref_to_message_id == b.message_id
        assert reply.header.acknowledgment is not None
        assert reply.signed
        assert reply.apprec is not None
    return [b.body for b in built]


async def _stored_once(database_url: str, bodies: list[bytes]) -> None:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as s:
            digests = [hashlib.sha256(b).hexdigest() for b in bodies]
            counted = await s.execute(
                select(Message.sha256, func.count())
                .where(Message.sha256.in_(digests))
                .group_by(Message.sha256)
            )
            assert dict(counted.all()) == dict.fromkeys(digests, 1)
    finally:
        await engine.dispose()


def _run(env: dict[str, str], tmp: Path) -> None:
    municipality = Municipality.from_pki(tmp / "pki")
    for url in _serve(env, tmp):
        bodies = asyncio.run(_post_all(url, municipality))
        asyncio.run(_stored_once(env["KPR_DATABASE_URL"], bodies))


def test_two_workers_on_sqlite_answer_concurrent_messages(tmp_path: Path) -> None:
    env = prepare(tmp_path)
    _run(env, tmp_path)


def test_two_workers_on_postgresql_answer_concurrent_messages(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    env = prepare(tmp_path, KPR_DATABASE_URL=pg_cluster.url)
    _run(env, tmp_path)
