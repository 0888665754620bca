"""The read side's queries at scale on PostgreSQL, through the real app (httpx on ASGI).

    python -m bench.queries [--postgres ADMIN_URL] [--messages 1000000]
                            [--findings-per-message 10] [--repeat 100] [--keep]

Issue 13: seeds a throw-away database with N messages (one receipt and two events each),
N x F findings and accepted notifications for half the failing GUIDs, across the 422
municipalities of 2018, in bulk (`INSERT ... SELECT FROM generate_series` on the server, then
ANALYZE; the time is reported; `--database URL` measures an already seeded one),
then times each endpoint `--repeat` times and prints p50/p99 in milliseconds: the message list
(unfiltered and with each filter), one message's detail, the largest municipality's error list
(open and all), coverage, and stats. Any query whose p99 misses the 50 ms target gets its
EXPLAIN ANALYZE printed. The data's shape (decisions, documented in docs/performance.md):
- municipality: Oslo (0301) gets 5 % of the messages, the rest spread evenly over the others;
- environment: 80 % production, 20 % pilot; received times spread evenly over six years;
- status: 70 % OK, 25 % OK_FEIL_I_DELMELDING, 5 % AVVIST (AppRec status 1, 3, 2);
- findings: one in 20 drops its notification (the error list), the rest are warnings; rule
  ids from a set of 12; half of the failing GUIDs are corrected by a later accepted
  notification.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app import migrate
from app.auth import repository as tokens
from app.intake import totals as totals_writer
from app.kommuner.lists import shipped_list
from app.main import create_app
from app.platform.db import create_engine, session_factory
from app.platform.settings import Env, Settings
from app.query import totals
from app.register.keys import load_protector, write_key_file
from app.register.protect import Protector
from bench import percentile

DEFAULT_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
TARGET_MS = 50.0
YEARS = 6
FIRST_YEAR = 2018
RULES = (
    "IPL-FID-INVALID",
    "IPL-TYPEID-CODE",
    "IPL-GUID-UNIQUE",
    "IPL-TJENESTETYPE-CODE",
    "IPL-LOPENR-GAP",
    "IPL-LOPENR-ORDER",
    "IPL-BRUKERNR-CHANGED",
    "IPL-BRUKERNR-STABLE",
    "IPL-ORGNR-REQUIRED",
    "IPL-EVENT-COUNT",
    "IPL-STATUS-CODE",
    "IPL-REF-MISSING",
)


@dataclass(frozen=True, slots=True)
class Timing:
    name: str
    p50: float
    p99: float
    status: int
    rows: int


async def _admin(admin_url: str, sql: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def _pick(salt: str, i: str, n: int) -> str:
    """A pseudo-random 0..n-1 per row, independent for each salt (so the municipality, the
    environment and the status of a message do not follow each other)."""
    return f"(abs(hashtext('{salt}' || {i})) % {n})"


def _kommune_sql(i: str, others: int) -> str:
    """Oslo for 1 in 20, else one of the other municipalities (array index from 1)."""
    return (
        f"(CASE WHEN {_pick('k', i, 20)} = 0 THEN '0301' "
        f"ELSE (ARRAY[:kommuner])[1 + {_pick('o', i, others)}] END)"
    )


def seed_statements(messages: int, findings_per_message: int, others: int) -> list[str]:
    kommune = _kommune_sql("i", others)
    span = YEARS * 365 * 86400

    def received_of(i: str) -> str:
        return (
            f"(make_timestamptz({FIRST_YEAR}, 1, 1, 0, 0, 0, 'UTC') "
            f"+ make_interval(secs => ({i}::bigint * {span}) / {messages}))"
        )

    def env_of(i: str) -> str:
        return f"(CASE WHEN {_pick('e', i, 5)} = 0 THEN 'pilot' ELSE 'production' END)"

    received = received_of("i")
    roll = _pick("s", "i", 100)
    status = (
        f"(CASE WHEN {roll} < 5 THEN 'AVVIST' WHEN {roll} < 30 THEN 'OK_FEIL_I_DELMELDING' "
        "ELSE 'OK' END)"
    )
    apprec = f"(CASE WHEN {roll} < 5 THEN '2' WHEN {roll} < 30 THEN '3' ELSE '1' END)"
    env = env_of("i")
    later = 20 * max(1, messages // 2000)  # the correcting message comes this many ids later
    guid = "(md5('n' || j)::uuid)::text"
    msg_of_j = f"((j - 1) / {findings_per_message} + 1)"
    return [
        f"""INSERT INTO message (id, received_at, request_id, remote_addr, content_type,
            size_bytes, raw, ebms_message_id, from_party_id, to_party_id, environment,
            msghead_msg_id, msghead_type, kommune_nr, notification_count, status, completed_at)
        SELECT i, {received}, 'bench', '10.0.0.1', 'multipart/related', 4096,
            convert_to('raw ' || i, 'UTF8'), md5('e' || i) || '@bench', (8000000 + i % 500)::text,
            CASE WHEN i % 5 = 0 THEN '131725' ELSE '122612' END, {env}, md5('m' || i),
            'KPR_IPL', {kommune}, {findings_per_message}, {status}, {received}
        FROM generate_series(1, {messages}) AS i""",
        f"""INSERT INTO receipt (message_id, kind, reply_ebms_message_id, content_type, body,
            apprec_xml, apprec_id, apprec_status, created_at)
        SELECT i, 'apprec', md5('r' || i), 'multipart/related', convert_to('reply', 'UTF8'),
            convert_to('<AppRec/>', 'UTF8'), md5('a' || i), {apprec}, {received}
        FROM generate_series(1, {messages}) AS i""",
        f"""INSERT INTO message_event (message_id, at, kind, detail)
        SELECT i, {received}, k, '{{}}'::json
        FROM generate_series(1, {messages}) AS i,
            unnest(ARRAY['received', 'receipt_built']) AS k""",
        f"""INSERT INTO finding (message_id, rule_id, layer, severity, consequence, apprec_code,
            location, detail, notification_guid, bruker_nr, fid, kommune_nr, environment,
            received_at)
        SELECT {msg_of_j}, (ARRAY[:rules])[1 + j % {len(RULES)}], 'content',
            CASE WHEN j % 20 = 0 THEN 'error' ELSE 'warning' END,
            CASE WHEN j % 20 = 0 THEN 'drop_notification' ELSE 'warn' END,
            CASE WHEN j % 20 = 0 THEN 'E31' ELSE NULL END,
            '/Melding/Notifikasjon', 'benchmark finding', {guid}, 'B' || (j % 100000),
            :sealed_fid,
            {_kommune_sql(msg_of_j, others)}, {env_of(msg_of_j)}, {received_of(msg_of_j)}
        FROM generate_series(1, {messages * findings_per_message}) AS j""",
        # half of the failing GUIDs are stored later (corrected), `later` messages on
        f"""INSERT INTO iplos_notification (message_id, environment, kommune_nr, guid, status,
            lopenr, forrige_guid, ref, bruker_nr, content_sha256)
        SELECT f.message_id + {later}, m.environment, f.kommune_nr, f.notification_guid, 'N',
            f.id, '00000000-0000-0000-0000-000000000000', NULL, f.bruker_nr, md5(f.id::text)
        FROM finding f JOIN message m ON m.id = f.message_id
        WHERE f.consequence = 'drop_notification' AND f.id % 40 = 0
          AND f.message_id + {later} <= {messages}""",
        f"SELECT setval(pg_get_serial_sequence('message', 'id'), {messages})",
        "VACUUM ANALYZE",
    ]


async def seed(url: str, messages: int, findings_per_message: int) -> float:
    """Bulk rows, then the running totals rebuilt from them as `db upgrade` does (timed and
    printed apart), then VACUUM ANALYZE as autovacuum would. Returns the seconds in all."""
    kommuner = [k.kommune_nr for k in shipped_list(FIRST_YEAR) if k.kommune_nr != "0301"]
    engine = create_async_engine(url)
    started = time.perf_counter()
    try:
        for sql in seed_statements(messages, findings_per_message, len(kommuner)):
            sql = sql.replace(":kommuner", ",".join(f"'{k}'" for k in kommuner))
            sql = sql.replace(":rules", ",".join(f"'{r}'" for r in RULES))
            # one sealed fid for every finding: opening it costs the same for each row
            sql = sql.replace(":sealed_fid", f"'{register_protector().seal('01010112345')}'")
            if sql == "VACUUM ANALYZE":
                print(f"rows loaded in {time.perf_counter() - started:.1f} s", flush=True)
                rebuilding = time.perf_counter()
                async with session_factory(engine)() as session:
                    await totals_writer.rebuild(session, totals.windows_for(""))
                    await session.commit()
                print(f"totals rebuilt in {time.perf_counter() - rebuilding:.1f} s", flush=True)
                async with engine.connect() as conn:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await conn.execute(text(sql))
                continue
            async with engine.begin() as conn:
                await conn.execute(text(sql))
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def _time(
    name: str, call: Callable[[], Awaitable[httpx.Response]], repeat: int
) -> tuple[Timing, httpx.Response]:
    response = await call()  # warm the caches and the plan
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        response = await call()
        samples.append((time.perf_counter() - t) * 1000)
    body = response.json() if response.headers.get("content-type", "").endswith("json") else {}
    rows = len(body.get("items") or body.get("rows") or body.get("kommuner") or [])
    return Timing(
        name, percentile(samples, 50), percentile(samples, 99), response.status_code, rows
    ), response


def _cases(messages: int) -> list[tuple[str, str, dict[str, str]]]:
    mid = messages // 2
    day = f"{FIRST_YEAR + YEARS // 2}-06-01T00:00:00Z"
    year = str(FIRST_YEAR)
    return [
        ("list", "/api/v1/messages", {}),
        ("list kommune=0301", "/api/v1/messages", {"kommune": "0301"}),
        ("list kommune=1101 (small)", "/api/v1/messages", {"kommune": "1101"}),
        ("list sender_her_id", "/api/v1/messages", {"sender_her_id": "8000007"}),
        ("list receiver_her_id", "/api/v1/messages", {"receiver_her_id": "131725"}),
        ("list environment=pilot", "/api/v1/messages", {"environment": "pilot"}),
        ("list status=AVVIST", "/api/v1/messages", {"status": "AVVIST"}),
        ("list received_from", "/api/v1/messages", {"received_from": day}),
        ("list received_to", "/api/v1/messages", {"received_to": day}),
        ("list msg_id", "/api/v1/messages", {"msg_id": f"{_md5('m', mid)}"}),
        ("list rule", "/api/v1/messages", {"rule": "IPL-FID-INVALID"}),
        ("list apprec_code", "/api/v1/messages", {"apprec_code": "E31"}),
        ("list all filters", "/api/v1/messages", {
            "kommune": "0301", "environment": "production", "status": "OK",
            "received_to": day, "apprec_code": "E31"}),
        ("detail", f"/api/v1/messages/{mid}", {}),
        ("findings (page)", f"/api/v1/messages/{mid}/findings", {}),
        ("feilliste 0301 open", "/api/v1/kommuner/0301/feilliste",
         {"year": year, "environment": "production"}),
        ("feilliste 0301 all", "/api/v1/kommuner/0301/feilliste",
         {"year": year, "environment": "production", "filter": "all"}),
        ("feilliste 0301 all, CSV (whole year)", "/api/v1/kommuner/0301/feilliste",
         {"year": year, "environment": "production", "filter": "all", "format": "csv"}),
        ("coverage", "/api/v1/coverage", {"year": year, "environment": "production"}),
        ("stats (30 days)", "/api/v1/stats", {"received_to": day}),
    ]  # fmt: skip


def _md5(prefix: str, i: int) -> str:
    import hashlib

    return hashlib.md5(f"{prefix}{i}".encode()).hexdigest()


@functools.cache
def register_keys() -> dict[str, Any]:
    """A throw-away set of register keys for the bench's server and its seeded rows."""
    directory = Path(tempfile.mkdtemp(prefix="kpr-bench-keys-"))
    write_key_file(directory / "b1.key")
    write_key_file(directory / "hmac.key")
    return {
        "register_keys": f"b1={directory / 'b1.key'}",
        "register_hmac_key": directory / "hmac.key",
    }


def register_protector() -> Protector:
    return load_protector(Settings(_env_file=None, env=Env.TEST, **register_keys()))


async def measure(url: str, messages: int, repeat: int, only: str = "") -> list[Timing]:
    settings = Settings(
        _env_file=None,
        env=Env.TEST,
        database_url=url,
        log_format="json",
        **register_keys(),
    )
    engine = create_engine(url)
    async with session_factory(engine)() as s:
        _, token = await tokens.create_token(s, f"bench-{uuid.uuid4().hex[:8]}", "operator")
        await s.commit()
    await engine.dispose()
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {token}"}
    timings = []
    async with app.router.lifespan_context(app):
        captured: list[tuple[str, object]] | None = None

        def capture(_conn: object, _cursor: object, sql: str, params: object, *_: object) -> None:
            if captured is not None and sql.lstrip().upper().startswith("SELECT"):
                captured.append((sql, params))

        event.listen(app.state.kpr.engine.sync_engine, "before_cursor_execute", capture)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, path, params in _cases(messages):
                if only not in name:
                    continue

                def call(
                    path: str = path, params: dict[str, str] = params
                ) -> Awaitable[httpx.Response]:
                    return client.get(path, params=params, headers=headers)

                timing, _ = await _time(name, call, repeat)
                timings.append(timing)
                if timing.p99 >= TARGET_MS:  # run once more to capture its SQL for EXPLAIN
                    captured = []
                    await call()
                    MISSED[name] = [(q, p) for q, p in captured if "api_token" not in q]
                    captured = None
    return timings


MISSED: dict[str, list[tuple[str, object]]] = {}


def report(seconds: float, messages: int, findings: int, timings: Sequence[Timing]) -> str:
    lines = [
        f"seeded {messages:,} messages, {findings:,} findings in {seconds:.1f} s",
        "",
        "| query | p50 ms | p99 ms | status | rows | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for t in timings:
        ok = "ok" if t.p99 < TARGET_MS else "MISS"
        lines.append(f"| {t.name} | {t.p50:.1f} | {t.p99:.1f} | {t.status} | {t.rows} | {ok} |")
    return "\n".join(lines)


async def explain_misses(url: str) -> str:
    """EXPLAIN ANALYZE of every SELECT a missed endpoint ran (captured while it ran)."""
    if not MISSED:
        return "missed: none"
    out: list[str] = []
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            for name, statements in MISSED.items():
                out.append(f"\n### {name}")
                for sql, params in statements:
                    result = await conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, BUFFERS) " + sql,
                        params if isinstance(params, tuple) else (),
                    )
                    out.append("```\n" + "\n".join(r[0] for r in result.all()) + "\n```")
    finally:
        await engine.dispose()
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--postgres", default=DEFAULT_ADMIN, help="admin URL (a DB is created)")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--findings-per-message", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--database", help="measure this seeded database (kept) instead")
    parser.add_argument("--only", default="", help="only the cases whose name contains this")
    args = parser.parse_args(argv)
    if args.database:
        timings = asyncio.run(measure(args.database, args.messages, args.repeat, args.only))
        print(report(0.0, args.messages, args.messages * args.findings_per_message, timings))
        print(asyncio.run(explain_misses(args.database)))
        return 0 if all(t.status == 200 for t in timings) else 1
    name = f"kpr_bench_{uuid.uuid4().hex[:10]}"
    url = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_admin(args.postgres, f'CREATE DATABASE "{name}"'))
    try:
        migrate.upgrade(url)
        seconds = asyncio.run(seed(url, args.messages, args.findings_per_message))
        timings = asyncio.run(measure(url, args.messages, args.repeat, args.only))
        from bench.feedback_queries import include as include_feedback  # issue 14

        timings += include_feedback(url, args.repeat) if "feedback".startswith(args.only) else []
        print(report(seconds, args.messages, args.messages * args.findings_per_message, timings))
        print(asyncio.run(explain_misses(url)))
        if args.keep:
            print(f"kept: {url}")
    finally:
        if not args.keep:
            asyncio.run(_admin(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return 0 if all(t.status == 200 for t in timings) else 1


if __name__ == "__main__":
    raise SystemExit(main())
