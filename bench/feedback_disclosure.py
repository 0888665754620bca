"""The feedback overview's cost with the disclosure audit (issue 20): every municipality of a
year's list gets aggregates drawn like small and large Norwegian municipalities (messages per
month often under 5, users as persons with services), seeded straight into the aggregate
tables of a fresh SQLite database; then `/feedback` is timed in process (httpx on ASGI):

- "cold": the pages' in-process stores emptied before each call (bench/feedback_queries.py's
  cold): the figures are read and the rows built, the decisions found made (by the refresh's
  medians or the previous reader);
- "first": the decisions emptied too: every municipality's suppression decided in the request
  (the first reader after a start, before the background refresh made them).

    .venv/bin/python -m bench.feedback_disclosure [--repeat 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import insert

from app import migrate
from app.feedback import disclosure, http, loading
from app.feedback.refresh import STATE
from app.feedback.tables import FeedbackCount, FeedbackKommune, FeedbackState
from app.kommuner.lists import shipped_list
from app.main import create_app
from app.platform.db import create_engine, session_factory
from app.platform.settings import Env, Settings
from bench import percentile, queries

YEAR = 2018
TYPES = ["1", "2", "3", "4", "11", "15", "21", "18", "8"]


def _counts(rng: random.Random) -> tuple[int, int, int, dict[tuple[str, str], tuple[int, int]]]:
    size = rng.choice([1, 1, 2, 5, 20, 100])  # most municipalities are small
    months = {f"{YEAR}-{m:02d}": rng.randint(1, 2 + size // 5) for m in range(1, 13)}
    months = {k: v for k, v in months.items() if rng.random() < 0.8}
    messages = sum(months.values()) or 1
    months = months or {f"{YEAR}-11": 1}
    accepted = rng.randint(0, 40 * size)
    failed = rng.choice([0, rng.randint(0, 4), rng.randint(0, 3 * size)])
    counts: dict[tuple[str, str], tuple[int, int]] = {
        ("month", k): (v, 0) for k, v in months.items()
    }
    events = accepted + rng.randint(0, 10 * size)
    for key, base in [
        ("lopenr", accepted),
        ("ref", accepted // 10),
        ("hendelse_dato", events),
        ("tjeneste_id", events),
        ("org_nr", events),
        ("type_id", events),
    ]:
        counts[("item", key)] = (base - rng.choice([0, 0, rng.randint(0, min(base, 6))]), base)
    if failed:
        counts[("rule_error", "IPL-FID-INVALID")] = (rng.randint(1, failed), 0)
    counts[("rule_warn", "IPL-TYPEID-KIND")] = (rng.randint(1, accepted + failed + 1), 0)
    people = [rng.sample(TYPES, rng.choice([1, 1, 2])) for _ in range(rng.randint(0, 30 * size))]
    if people:
        lt = sum(1 for p in people if "21" in p)
        home = sum(1 for p in people if "21" not in p and set(p) & {"1", "2", "3", "4", "11", "15"})
        counts[("users", "total")] = (len(people), 0)
        counts[("users", "long_term")] = (lt, 0)
        counts[("users", "home")] = (home, 0)
        counts[("users", "other")] = (len(people) - lt - home, 0)
        for t in TYPES:
            n = sum(1 for p in people if t in p)
            if n:
                counts[("tjeneste", t)] = (n, 0)
                counts[("tjeneste_stopp", t)] = (rng.randint(0, n // 4), 0)
    return messages, accepted, failed, counts


async def seed(url: str, rng: random.Random) -> int:
    engine = create_engine(url)
    sessions = session_factory(engine)
    kommuner = shipped_list(YEAR)
    at = datetime(YEAR, 1, 10, 12, tzinfo=UTC)
    async with sessions() as s:
        rows = []
        for k in kommuner:
            messages, accepted, failed, counts = _counts(rng)
            s.add(
                FeedbackKommune(
                    environment="production",
                    year=YEAR,
                    kommune_nr=k.kommune_nr,
                    messages=messages,
                    readable=messages,
                    first_readable_at=at,
                    last_readable_at=at,
                    accepted=accepted,
                    failed=failed,
                )
            )
            rows += [
                {
                    "environment": "production",
                    "year": YEAR,
                    "kommune_nr": k.kommune_nr,
                    "kind": kind,
                    "key": key,
                    "value": value,
                    "total": total,
                }
                for (kind, key), (value, total) in counts.items()
            ]
        await s.execute(insert(FeedbackCount), rows)
        s.add(FeedbackState(name=STATE, watermark=0, generation=1, refreshed_at=at))
        await s.commit()
    await engine.dispose()
    return len(kommuner)


async def measure(url: str, repeat: int) -> dict[str, list[float]]:
    settings = Settings(_env_file=None, env=Env.TEST, database_url=url, **queries.register_keys())
    app = create_app(settings)
    out: dict[str, list[float]] = {"first": [], "cold": []}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name in ("first", "cold"):
                for _ in range(repeat):
                    loading._CACHE.clear()
                    http.forget_all()
                    if name == "first":
                        disclosure._DECIDED.clear()
                    t = time.perf_counter()
                    r = await client.get("/feedback", params={"year": YEAR})
                    out[name].append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200, r.text
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        migrate.upgrade(url)
        n = asyncio.run(seed(url, random.Random(args.seed)))
        timings = asyncio.run(measure(url, args.repeat))
    print(f"{n} municipalities, {args.repeat} calls each")
    for name, samples in timings.items():
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        print(f"/feedback {name}: p50 {p50:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
