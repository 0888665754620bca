"""The open feedback's pages at scale on PostgreSQL (issue 14), through the real app.

    python -m bench.feedback_queries [--postgres ADMIN_URL] [--messages 1000000] [--repeat 100]
    python -m bench.feedback_queries --database URL   # one seeded by bench.queries --keep

Seeds like bench/queries.py (the same messages, receipts, findings and notifications), adds
one event per stored notification (a service type from kodeverk 9151, 1 in 10 without
tjenesteOrgNr), runs the full refresh of the aggregates (timed), then times `/feedback` and
`/feedback/0301` (the largest municipality) and their JSON twins `--repeat` times each: once
as a reader gets them after a refresh (the figures cached per generation: "warm"), and once
with the in-process cache emptied before every request, so every request reads the aggregate
tables ("cold"). Prints p50/p99 in milliseconds against the 50 ms target. `include()` is what
bench/queries.py calls to add these rows to its own report.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Sequence

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app import migrate
from app.feedback import http, loading
from app.feedback.refresh import refresh_once
from app.main import create_app
from app.platform.db import create_engine, session_factory
from app.platform.settings import Env, Settings
from bench import percentile, queries
from bench.queries import Timing

YEAR = str(queries.FIRST_YEAR + 1)
CODES = ("1", "2", "3", "4", "5", "7", "8", "9", "11", "15", "17", "18", "19", "20", "21", "22")

EVENTS_SQL = f"""
INSERT INTO iplos_event (notification_id, position, kind, tjeneste_type, tjeneste_id,
    tjeneste_org_nr, hendelse_dato)
SELECT n.id, 0, 'TjenesteStart',
    (ARRAY[{",".join(f"'{c}'" for c in CODES)}])[1 + n.id % {len(CODES)}],
    'T' || n.id, CASE WHEN n.id % 10 = 0 THEN NULL ELSE '974760673' END,
    date '{queries.FIRST_YEAR}-01-01' + (n.id % 2000)::int
FROM iplos_notification n
"""


def _settings(url: str) -> Settings:
    return Settings(
        _env_file=None,
        env=Env.TEST,
        database_url=url,
        log_format="json",
        **queries.register_keys(),
    )


async def prepare(url: str) -> tuple[float, int]:
    """Events for the stored notifications, then a full refresh: (seconds, triples)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            # once per database (a NOT EXISTS per row would be planned against the empty
            # table: quadratic)
            if not await conn.scalar(text("SELECT EXISTS (SELECT 1 FROM iplos_event)")):
                await conn.execute(text(EVENTS_SQL))
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE iplos_event"))
    finally:
        await engine.dispose()
    engine = create_engine(url)
    started = time.perf_counter()
    try:
        report = await refresh_once(session_factory(engine), _settings(url), full=True)
    finally:
        await engine.dispose()
    return time.perf_counter() - started, report.touched


CASES = [
    ("feedback page", "/feedback", {"year": YEAR}),
    ("feedback page 0301", "/feedback/0301", {"year": YEAR}),
    ("feedback json", "/api/v1/feedback", {"year": YEAR}),
    ("feedback json 0301", "/api/v1/feedback/0301", {"year": YEAR}),
]


async def measure(url: str, repeat: int) -> list[Timing]:
    app = create_app(_settings(url))
    out: list[Timing] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for cold in (False, True):
                for name, path, params in CASES:
                    await client.get(path, params=params)  # warm the plans
                    samples = []
                    status = 0
                    for _ in range(repeat):
                        if cold:
                            loading._CACHE.clear()
                            http.forget_all()
                        t = time.perf_counter()
                        r = await client.get(path, params=params)
                        samples.append((time.perf_counter() - t) * 1000)
                        status = r.status_code
                    out.append(
                        Timing(
                            f"{name} ({'cold' if cold else 'warm'})",
                            percentile(samples, 50),
                            percentile(samples, 99),
                            status,
                            len(r.content),
                        )
                    )
    return out


def include(url: str, repeat: int) -> list[Timing]:
    """bench/queries.py's hook: prepare the seeded database and time the feedback."""
    asyncio.run(prepare(url))
    return asyncio.run(measure(url, repeat))


def report(seconds: float, triples: int, timings: Sequence[Timing]) -> str:
    lines = [
        f"full refresh: {triples:,} municipality-years in {seconds:.1f} s",
        "",
        "| query | p50 ms | p99 ms | status | bytes | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for t in timings:
        ok = "ok" if t.p99 < queries.TARGET_MS else "MISS"
        lines.append(f"| {t.name} | {t.p50:.1f} | {t.p99:.1f} | {t.status} | {t.rows} | {ok} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--postgres", default=queries.DEFAULT_ADMIN, help="admin URL")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--findings-per-message", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--database", help="an already seeded database (kept)")
    args = parser.parse_args(argv)
    if args.database:
        seconds, triples = asyncio.run(prepare(args.database))
        timings = asyncio.run(measure(args.database, args.repeat))
        print(report(seconds, triples, timings))
        return 0 if all(t.status == 200 for t in timings) else 1
    name = f"kpr_bench_{uuid.uuid4().hex[:10]}"
    url = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
    asyncio.run(queries._admin(args.postgres, f'CREATE DATABASE "{name}"'))
    try:
        migrate.upgrade(url)
        seeded = asyncio.run(queries.seed(url, args.messages, args.findings_per_message))
        print(f"seeded {args.messages:,} messages in {seeded:.1f} s")
        seconds, triples = asyncio.run(prepare(url))
        timings = asyncio.run(measure(url, args.repeat))
        print(report(seconds, triples, timings))
    finally:
        asyncio.run(queries._admin(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return 0 if all(t.status == 200 for t in timings) else 1


if __name__ == "__main__":
    raise SystemExit(main())
