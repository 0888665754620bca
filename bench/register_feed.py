"""The register's hand-off at scale (issue 19): feed pages and the Parquet export.

    python -m bench.register_feed [--notifications 1000000] [--postgres ADMIN_URL]
                                  [--pages 50] [--sqlite] [--keep]

Seeds a throw-away PostgreSQL database with N notifications straight into the register tables
(COPY through asyncpg: melding, notifikasjon, hendelse with sealed fids; the message rows and
the episodes by INSERT ... SELECT on the server; then VACUUM ANALYZE), through the real app
(httpx on ASGI, a `register` token), and measures:

- feed pages of 5 000 items (`GET /api/v1/register/notifications?limit=5000`) after `--pages`
  cursors spread over the whole feed, then the same number of pages in a row from the start:
  p50/p99 in ms against the 200 ms target, next to the page's keyset query alone (asyncpg,
  no events, episodes or JSON: the database's floor) measured in the same run;
- `kpr-mottak export --format parquet` of the year (all N) in its own process: seconds and
  peak RSS against the 30 s target, next to `COPY (the same notifikasjon and hendelse rows)
  TO STDOUT` into a file (the database's floor for reading them).

`--sqlite` measures the same on a SQLite file seeded with the same rows (executemany). The
data's shape: meldinger of 1, 3, 10, 30, 100, 300, 1 000 and 3 000 notifications in turn
(so pages end inside large meldinger and span many small ones), 50 municipalities, received
through 2018 in production; one event per notification and a second (TjenesteSlutt) on every
fourth; two notifications per person and service; the numbers in commit order = ids.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import logging
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from app import migrate
from app.api.paging import decode_position, encode_position
from app.auth import repository as tokens
from app.main import create_app
from app.platform.db import create_engine, session_factory
from app.platform.logs import configure_logging
from app.platform.settings import Env, Settings
from app.register.keys import load_protector
from app.register.protect import Protector
from bench import percentile, ratio
from bench.queries import DEFAULT_ADMIN, _admin
from bench.validate import measure

SIZES = (1, 3, 10, 30, 100, 300, 1000, 3000)
KOMMUNER = tuple(f"{3000 + i:04d}" for i in range(50))
PAGE = 5000
FEED_TARGET_MS = 200.0
EXPORT_TARGET_S = 30.0
YEAR = 2018
ENVIRONMENT = "production"
T0 = datetime(YEAR, 1, 2, tzinfo=UTC)
BATCH = 20_000


@dataclass(frozen=True, slots=True)
class Plan:
    """Which melding each notification belongs to."""

    sizes: list[int]

    @property
    def meldinger(self) -> int:
        return len(self.sizes)


def plan(notifications: int) -> Plan:
    sizes: list[int] = []
    left = notifications
    for size in itertools.cycle(SIZES):
        if left <= 0:
            break
        sizes.append(min(size, left))
        left -= sizes[-1]
    return Plan(sizes)


def received(m: int, meldinger: int) -> datetime:
    return T0 + timedelta(seconds=(m * 360 * 86400) // max(1, meldinger))


def melding_rows(p: Plan) -> Iterator[tuple[Any, ...]]:
    for m in range(1, p.meldinger + 1):
        row = {
            "id": m,
            "message_id": m,
            "environment": ENVIRONMENT,
            "kommune_nr": KOMMUNER[m % len(KOMMUNER)],
            "received_at": received(m, p.meldinger),
            "apprec_id": f"apprec-{m}",
            "apprec_status": "1",
            "feed_seq": m,
            "versjon": "56.0.0",
            "meldingstype": "K",
            "leverandor": "Leverandør AS",
            "navn_epj": "EPJ",
            "versjon_epj": "1.0",
            "versjon_ut": "2.3",
            "lokalident": f"lok-{m}",
        }
        yield tuple(row.values())


MELDING_COLUMNS = (
    "id", "message_id", "environment", "kommune_nr", "received_at", "apprec_id",
    "apprec_status", "feed_seq", "versjon", "meldingstype", "leverandor", "navn_epj",
    "versjon_epj", "versjon_ut", "lokalident",
)  # fmt: skip
NOTIFIKASJON_COLUMNS = (
    "id", "melding_id", "environment", "kommune_nr", "position", "status_notifikasjon",
    "notifikasjon_tid", "notifikasjon_guid", "notifikasjon_forrige_guid",
    "notifikasjon_lope_nr", "notifikasjon_ref", "notifikasjon_guid_tolket",
    "notifikasjon_ref_tolket", "notifikasjon_lope_nr_tolket", "funn", "feil",
)  # fmt: skip
HENDELSE_COLUMNS = (
    "id", "notifikasjon_id", "environment", "kommune_nr", "position", "hendelse_type",
    "tjeneste_type", "hendelse_reg_tid", "tjeneste_org_nr", "hendelse_dato", "tjeneste_id",
    "hendelse_guid", "midlertidig_stopp_id", "pasient_guid", "bruker_nr", "fid", "fid_hmac",
    "type_id", "bydel", "hendelse_dato_tolket", "hendelse_guid_tolket", "type_id_tolket",
    "tjeneste_type_tolket",
)  # fmt: skip
FID = HENDELSE_COLUMNS.index("fid")  # holds the person's number until sealed


def _guid(kind: str, i: int) -> str:
    """A GUID of the schema's shape, one per (kind, number); kind one hex digit."""
    return f"{i & 0xFFFFFFFF:08x}-{(i >> 32) & 0xFFFF:04x}-4{kind}00-8000-{i:012x}"


def notification_rows(p: Plan) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """(notifikasjon row, its hendelse rows with the person's number where fid goes), in id
    order."""
    n = h = 0
    for m, size in enumerate(p.sizes, start=1):
        kommune = KOMMUNER[m % len(KOMMUNER)]
        for position in range(1, size + 1):
            n += 1
            day = date(YEAR, 1, 1) + timedelta(days=n % 360)
            where = {"environment": ENVIRONMENT, "kommune_nr": kommune}
            notification = {
                "id": n,
                "melding_id": m,
                **where,
                "position": position,
                "status_notifikasjon": "N",
                "notifikasjon_tid": f"{day}T12:00:00",
                "notifikasjon_guid": _guid("a", n),
                "notifikasjon_forrige_guid": _guid("a", n - 1),
                "notifikasjon_lope_nr": str(n),
                "notifikasjon_ref": None,
                "notifikasjon_guid_tolket": _guid("a", n),
                "notifikasjon_ref_tolket": None,
                "notifikasjon_lope_nr_tolket": n,
                "funn": None,
                "feil": None,
            }
            person = n // 2
            kinds = ("TjenesteStart", "TjenesteSlutt") if n % 4 == 0 else ("TjenesteStart",)
            events = []
            for e, kind in enumerate(kinds, start=1):
                h += 1
                event = {
                    "id": h,
                    "notifikasjon_id": n,
                    **where,
                    "position": e,
                    "hendelse_type": kind,
                    "tjeneste_type": "20",
                    "hendelse_reg_tid": f"{day}T12:00:00",
                    "tjeneste_org_nr": "974760673",
                    "hendelse_dato": day.isoformat(),
                    "tjeneste_id": f"T{person}",
                    "hendelse_guid": _guid("b", h),
                    "midlertidig_stopp_id": None,
                    "pasient_guid": _guid("c", person),
                    "bruker_nr": f"B{person}",
                    "fid": person,
                    "fid_hmac": None,
                    "type_id": "1",
                    "bydel": "030101" if n % 7 == 0 else None,
                    "hendelse_dato_tolket": day,
                    "hendelse_guid_tolket": _guid("b", h),
                    "type_id_tolket": "1",
                    "tjeneste_type_tolket": "20",
                }
                events.append(tuple(event.values()))
            yield tuple(notification.values()), events


def synthetic_fid(person: int) -> str:
    """Shape only (11 digits), never a real person's number."""
    return f"{(person * 7919) % 10**11:011d}"


def sealed(
    protector: Protector, event: tuple[Any, ...], cache: dict[int, tuple[str, str]]
) -> tuple[Any, ...]:
    """The event with its person's fid sealed and hashed (once per person)."""
    person = event[FID]
    if person not in cache:
        if len(cache) > 100_000:
            cache.clear()
        fid = synthetic_fid(person)
        cache[person] = (protector.seal(fid), protector.digest(fid))
    token, digest = cache[person]
    return (*event[:FID], token, digest, *event[FID + 2 :])


def _batches(rows: Iterator[Any]) -> Iterator[list[Any]]:
    while batch := list(itertools.islice(rows, BATCH)):
        yield batch


async def _connect(url: str) -> Any:
    """A plain asyncpg connection (COPY, and the reference queries); asyncpg has no type
    hints, hence Any."""
    asyncpg = importlib.import_module("asyncpg")
    return await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))


# --- seeding ----------------------------------------------------------------------------------


MESSAGES_SQL = """
INSERT INTO message (id, received_at, request_id, remote_addr, content_type, size_bytes,
    from_party_id, to_party_id, environment, msghead_type, kommune_nr, status, completed_at)
SELECT i, make_timestamptz({year}, 1, 2, 0, 0, 0, 'UTC') + make_interval(secs => i),
    'bench', '10.0.0.1', 'multipart/related', 4096, '8000001', '122612', '{env}', 'KPR_IPL',
    '0301', 'OK', make_timestamptz({year}, 1, 2, 0, 0, 0, 'UTC')
FROM generate_series(1, {count}) AS i
"""
EPISODES_SQL = """
INSERT INTO episode (environment, kommune_nr, bruker_nr, tjeneste_id, fid_hmac, tjeneste_type,
    start_dato, start_notifikasjon_guid, slutt_dato, slutt_notifikasjon_guid, tjeneste_org_nr,
    midlertidige_stopp, utforer_endringer, updated_at)
SELECT environment, kommune_nr, bruker_nr, tjeneste_id, max(fid_hmac), '20',
    min(hendelse_dato_tolket), min(hendelse_guid_tolket), NULL, NULL, '974760673',
    '[]', '[]', {now}
FROM hendelse GROUP BY environment, kommune_nr, bruker_nr, tjeneste_id
"""


async def seed_postgres(url: str, p: Plan, protector: Protector) -> float:
    started = time.perf_counter()
    conn = await _connect(url)
    try:
        await conn.execute(MESSAGES_SQL.format(year=YEAR, env=ENVIRONMENT, count=p.meldinger))
        await conn.copy_records_to_table(
            "melding", records=list(melding_rows(p)), columns=MELDING_COLUMNS
        )
        cache: dict[int, tuple[str, str]] = {}
        for batch in _batches(notification_rows(p)):
            await conn.copy_records_to_table(
                "notifikasjon", records=[n for n, _ in batch], columns=NOTIFIKASJON_COLUMNS
            )
            await conn.copy_records_to_table(
                "hendelse",
                records=[sealed(protector, e, cache) for _, events in batch for e in events],
                columns=HENDELSE_COLUMNS,
            )
        await conn.execute(EPISODES_SQL.format(now="now()"))
        await conn.execute(
            "INSERT INTO register_feed (environment, last_seq, confirmed_seq, "
            f"confirmed_notifikasjon_id) VALUES ('{ENVIRONMENT}', {p.meldinger}, 0, 0)"
        )
        for table in ("message", "melding", "notifikasjon", "hendelse"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


def seed_sqlite(path: Path, p: Plan, protector: Protector) -> float:
    started = time.perf_counter()
    db = sqlite3.connect(path)
    try:
        now = _sqlite_time(datetime.now(UTC))
        db.executemany(
            "INSERT INTO message (id, received_at, request_id, size_bytes, environment, status) "
            "VALUES (?, ?, 'bench', 4096, ?, 'OK')",
            ((m, _sqlite_time(received(m, p.meldinger)), ENVIRONMENT)
             for m in range(1, p.meldinger + 1)),
        )  # fmt: skip
        _insert(db, "melding", MELDING_COLUMNS, (_sqlite(r) for r in melding_rows(p)))
        cache: dict[int, tuple[str, str]] = {}
        for batch in _batches(notification_rows(p)):
            _insert(db, "notifikasjon", NOTIFIKASJON_COLUMNS, (n for n, _ in batch))
            _insert(
                db,
                "hendelse",
                HENDELSE_COLUMNS,
                (_sqlite(sealed(protector, e, cache)) for _, events in batch for e in events),
            )
        db.execute(EPISODES_SQL.format(now=f"'{now}'"))
        db.execute(
            "INSERT INTO register_feed (environment, last_seq, confirmed_seq, "
            "confirmed_notifikasjon_id) VALUES (?, ?, 0, 0)",
            (ENVIRONMENT, p.meldinger),
        )
        db.commit()
        db.execute("ANALYZE")
    finally:
        db.close()
    return time.perf_counter() - started


def _sqlite(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Values as SQLAlchemy stores them in SQLite (UTC times without the zone)."""
    return tuple(
        _sqlite_time(v) if isinstance(v, datetime) else v.isoformat()
        if isinstance(v, date) else v
        for v in row
    )  # fmt: skip


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _insert(db: sqlite3.Connection, table: str, cols: Sequence[str], rows: Any) -> None:
    marks = ", ".join("?" for _ in cols)
    db.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", rows)


# --- measuring --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedTiming:
    name: str
    p50: float
    p99: float
    items: int
    reference_p50: float
    reference_p99: float


def settings_for(url: str, pki_dir: Path) -> Settings:
    return Settings(_env_file=None, env=Env.TEST, database_url=url, log_format="json",
                    pki_dir=pki_dir)  # fmt: skip


def cursors(p: Plan, pages: int) -> list[tuple[int, int]]:
    """`pages` positions spread over the feed: (melding, a notification id in it)."""
    rng = random.Random(19)
    starts = list(itertools.accumulate(p.sizes, initial=0))
    out = []
    for _ in range(pages):
        m = rng.randrange(p.meldinger)
        out.append((m + 1, starts[m] + rng.randrange(p.sizes[m]) + 1))
    return out


KEYSET_SQL = """
SELECT n.*, m.* FROM melding m JOIN notifikasjon n ON n.melding_id = m.id
WHERE m.environment = $1 AND m.feed_seq >= $2 AND (m.feed_seq > $2 OR n.id > $3)
ORDER BY m.feed_seq, n.id LIMIT $4
"""
KEYSET_SQLITE = """
SELECT n.*, m.* FROM melding m JOIN notifikasjon n ON n.melding_id = m.id
WHERE m.environment = ?1 AND m.feed_seq >= ?2 AND (m.feed_seq > ?2 OR n.id > ?3)
ORDER BY m.feed_seq, n.id LIMIT ?4
"""


async def measure_feed(url: str, settings: Settings, p: Plan, pages: int) -> list[FeedTiming]:
    engine = create_engine(url)
    async with session_factory(engine)() as s:
        _, loader = await tokens.create_token(s, f"bench-{uuid.uuid4().hex[:6]}", "register")
        await s.commit()
    await engine.dispose()
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {loader}"}
    out = []
    async with app.router.lifespan_context(app):
        configure_logging(settings.log_format, logging.WARNING)  # not a line per request
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def get(after: str | None) -> tuple[float, Page]:
                params: dict[str, str | int] = {"environment": ENVIRONMENT, "limit": PAGE}
                if after is not None:
                    params["after"] = after
                t = time.perf_counter()
                r = await client.get("/api/v1/register/notifications", params=params,
                                     headers=headers)  # fmt: skip
                elapsed = (time.perf_counter() - t) * 1000
                assert r.status_code == 200, r.text
                # only what the bench needs is kept: the decoded page (200 000 objects) held
                # across the next request made the server's garbage collector walk the
                # client's items in it, about 10 ms a page a separate loader never costs
                body = r.json()
                return elapsed, Page(len(body["items"]), body["next"])

            await get(None)  # warm the plans
            spread, items = [], 0
            for seq, nid in cursors(p, pages):
                ms, body = await get(encode_position(seq, nid))
                spread.append(ms)
                items += body.items
            run, after, run_items, starts = [], None, 0, []
            for _ in range(pages):
                starts.append(decode_position(after) if after else (0, 0))
                ms, body = await get(after)
                run.append(ms)
                run_items += body.items
                after = body.next
    ref_spread = await _reference(url, cursors(p, pages))
    ref_run = await _reference(url, starts)
    for name, samples, count, ref in (
        ("after cursors spread over the feed", spread, items, ref_spread),
        ("pages in a row from the start", run, run_items, ref_run),
    ):
        out.append(
            FeedTiming(name, percentile(samples, 50), percentile(samples, 99),
                       count // max(1, pages), percentile(ref, 50), percentile(ref, 99))
        )  # fmt: skip
    return out


async def _reference(url: str, positions: Sequence[tuple[int, int]]) -> list[float]:
    """The page's keyset query alone, on the database (rows fetched, nothing built)."""
    samples = []
    if url.startswith("sqlite"):
        db = sqlite3.connect(url.split("///", 1)[1])
        try:
            for seq, nid in positions:
                t = time.perf_counter()
                db.execute(KEYSET_SQLITE, (ENVIRONMENT, seq, nid, PAGE)).fetchall()
                samples.append((time.perf_counter() - t) * 1000)
        finally:
            db.close()
        return samples
    conn = await _connect(url)
    try:
        await conn.fetch(KEYSET_SQL, ENVIRONMENT, 0, 0, PAGE)
        for seq, nid in positions:
            t = time.perf_counter()
            await conn.fetch(KEYSET_SQL, ENVIRONMENT, seq, nid, PAGE)
            samples.append((time.perf_counter() - t) * 1000)
    finally:
        await conn.close()
    return samples


@dataclass(frozen=True, slots=True)
class Page:
    items: int
    next: str | None


@dataclass(frozen=True, slots=True)
class ExportTiming:
    seconds: float
    peak_mb: float
    returncode: int
    reference_seconds: float
    files_mb: float


COPY_OUT = [
    "SELECT n.* FROM notifikasjon n JOIN melding m ON m.id = n.melding_id "
    f"WHERE m.environment = '{ENVIRONMENT}' ORDER BY n.id",
    "SELECT h.id, h.notifikasjon_id, h.environment, h.kommune_nr, h.position, h.hendelse_type, "
    "h.tjeneste_type, h.hendelse_reg_tid, h.tjeneste_org_nr, h.hendelse_dato, h.tjeneste_id, "
    "h.hendelse_guid, h.midlertidig_stopp_id, h.pasient_guid, h.bruker_nr, h.fid_hmac, "
    "h.type_id, h.bydel, h.hendelse_dato_tolket, h.hendelse_guid_tolket, h.type_id_tolket "
    "FROM hendelse h JOIN notifikasjon n ON n.id = h.notifikasjon_id "
    f"JOIN melding m ON m.id = n.melding_id WHERE m.environment = '{ENVIRONMENT}' ORDER BY h.id",
]


def measure_export(url: str, settings: Settings, work: Path) -> ExportTiming:
    out = work / f"export-{uuid.uuid4().hex[:6]}"
    kpr = str(Path(sys.executable).parent / "kpr-mottak")
    env_cmd = [
        "env", f"KPR_DATABASE_URL={url}", "KPR_ENV=test", f"KPR_PKI_DIR={settings.pki_dir}",
        kpr, "export", "--year", str(YEAR), "--environment", ENVIRONMENT,
        "--format", "parquet", "--out", str(out),
    ]  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    done = measure("export", env_cmd, work)
    files = sum(f.stat().st_size for f in out.iterdir()) / 2**20 if out.is_dir() else 0.0
    reference = asyncio.run(_copy_out(url, work)) if url.startswith("postgresql") else 0.0
    return ExportTiming(done.seconds, done.peak_mb, done.returncode, reference, files)


async def _copy_out(url: str, work: Path) -> float:
    conn = await _connect(url)
    try:
        t = time.perf_counter()
        for i, query in enumerate(COPY_OUT):
            await conn.copy_from_query(query, output=str(work / f"copy-{i}.csv"), format="csv")
        return time.perf_counter() - t
    finally:
        await conn.close()


def report(kind: str, notifications: int, seeded: float, feed: Sequence[FeedTiming],
           export: ExportTiming) -> str:  # fmt: skip
    lines = [
        f"{kind}: {notifications:,} notifications seeded in {seeded:.1f} s",
        "",
        f"| feed page of {PAGE:,} | items | p50 ms | p99 ms | keyset query p50 / p99 ms | "
        "ratio p99 | target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for t in feed:
        ok = "ok" if t.p99 < FEED_TARGET_MS else "MISS"
        lines.append(
            f"| {t.name} | {t.items:,} | {t.p50:.1f} | {t.p99:.1f} | {t.reference_p50:.1f} / "
            f"{t.reference_p99:.1f} | {ratio(t.p99, t.reference_p99):.1f}x | {ok} |"
        )
    ok = "ok" if export.returncode == 0 and export.seconds <= EXPORT_TARGET_S else "MISS"
    ref = "n/a"
    if export.reference_seconds:
        times = ratio(export.seconds, export.reference_seconds)
        ref = f"{export.reference_seconds:.1f} s, ratio {times:.1f}x"
    lines += [
        "",
        f"export --format parquet: {export.seconds:.1f} s (exit {export.returncode}), peak RSS "
        f"{export.peak_mb:.0f} MB, files {export.files_mb:.0f} MB; COPY of notifikasjon and "
        f"hendelse to CSV: {ref}; target {EXPORT_TARGET_S:.0f} s: {ok}",
    ]
    return "\n".join(lines)


def run(url: str, p: Plan, pages: int, work: Path, *, postgres: bool) -> str:
    work.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(url)
    settings = settings_for(url, work / "pki")
    protector = load_protector(settings)  # the dev keys, written under pki/ for the app too
    if postgres:
        seeded = asyncio.run(seed_postgres(url, p, protector))
    else:
        seeded = seed_sqlite(Path(url.split("///", 1)[1]), p, protector)
    print(f"seeded in {seeded:.1f} s", flush=True)
    feed = asyncio.run(measure_feed(url, settings, p, pages))
    export = measure_export(url, settings, work)
    return report("PostgreSQL" if postgres else "SQLite", sum(p.sizes), seeded, feed, export)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--notifications", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=DEFAULT_ADMIN, help="admin URL")
    parser.add_argument("--pages", type=int, default=50, help="pages timed per case")
    parser.add_argument("--sqlite", action="store_true", help="SQLite as well")
    parser.add_argument("--keep", action="store_true", help="keep the database and files")
    args = parser.parse_args(argv)
    p = plan(args.notifications)
    work = Path(tempfile.mkdtemp(prefix="kpr-bench-feed-"))
    name = f"kpr_bench_{uuid.uuid4().hex[:10]}"
    url = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_admin(args.postgres, f'CREATE DATABASE "{name}"'))
    reports = []
    try:
        try:
            reports.append(run(url, p, args.pages, work / "pg", postgres=True))
        finally:
            if not args.keep:
                drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
                asyncio.run(_admin(args.postgres, drop))
        if args.sqlite:
            (work / "sqlite").mkdir(parents=True, exist_ok=True)
            url = f"sqlite+aiosqlite:///{work / 'sqlite' / 'bench.db'}"
            reports.append(run(url, p, args.pages, work / "sqlite", postgres=False))
    finally:
        if not args.keep:  # the exports and the SQLite file: about 2 GB at 1 000 000
            shutil.rmtree(work, ignore_errors=True)
    print("\n\n".join(reports))
    if args.keep:
        print(f"\nkept: {work} and database {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
