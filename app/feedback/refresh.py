"""The feedback's aggregates, computed from the stored history and the register store (users at
the year's end and the Bruker's items: `app.feedback.register_counts`), refreshed in the
background (`start_refresher`, from the app's lifespan) or by `kpr-mottak feedback refresh`.

Incremental: the refresh recomputes only the (environment, municipality, reporting year)
triples that messages received since the last refresh touch: messages with an id above the
watermark, and, because a message's id is taken before its transaction commits, those received
within `LOOKBACK` before the last refresh. Each triple is recomputed whole (one municipality's
messages of one year: indexed), never patched by difference, so a refresh that runs twice
gives the same figures; the touched municipalities' other years get their users at the year's
end recounted, since those read the episodes as they are now. `full=True` recomputes
everything (after retention has deleted messages, or a restore).

Only counts leave this module; brukerNr is counted (DISTINCT) inside the database and never
read into Python. One refresher at a time: a transaction-scoped advisory lock on PostgreSQL,
the app's writer lock on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.content.calendar import local_date
from app.feedback import disclosure
from app.feedback import history_counts as history
from app.feedback import repository as repo
from app.feedback.audit import Publication, Status, Table, share_value
from app.feedback.register_counts import person_item_counts, year_end_counts
from app.feedback.tables import FeedbackState
from app.platform.logs import get_logger
from app.platform.settings import Settings
from app.platform.sqlite_writer import SqliteWriter
from app.query.reporting import received_window, year_entry
from app.query.totals import READABLE

log = get_logger(__name__)

STATE = "main"
LOOKBACK = timedelta(minutes=15)
FAILING = ("drop_notification", "keep_with_error", "reject_message", "message_error")
FIRST_DELAY_SECONDS = 60.0  # not during a restart loop; tests set a short interval


@dataclass
class RefreshReport:
    touched: int = 0  # (environment, municipality, year) triples recomputed
    touched_keys: set[tuple[str, str, int]] = field(default_factory=set)
    # other years of the touched municipalities whose users at the year's end were recounted
    year_end_keys: set[tuple[str, str, int]] = field(default_factory=set)
    years: set[tuple[str, int]] = field(default_factory=set)
    watermark: int = 0
    generation: int = 0
    skipped: bool = False  # another refresher held the lock


@dataclass
class _Figures:
    messages: int = 0
    readable: int = 0
    first: datetime | None = None
    last: datetime | None = None
    accepted: int = 0
    failed: int = 0
    counts: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def put(self, kind: str, key: str, value: int, total: int = 0) -> None:
        self.counts[(kind, key)] = (int(value), int(total))


def _aware(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite gives MIN/MAX of a CASE back as text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _years_of(settings: Settings, first: datetime, last: datetime) -> list[int]:
    """Reporting years whose window of received dates overlaps [first, last]."""
    out = []
    for year in range(local_date(first).year - 1, local_date(last).year + 1):
        start, end = received_window(year_entry(settings, year))
        if start <= last and first < end:
            out.append(year)
    return out


async def _compute(
    session: AsyncSession,
    settings: Settings,
    environment: str,
    year: int,
    kommuner: Sequence[str] | None,
) -> dict[str, _Figures]:
    """The figures of `kommuner` (None: every municipality) in one environment and reporting
    year: a handful of set-based queries grouped by municipality, whatever their number."""
    start, end = received_window(year_entry(settings, year))
    w = history.Window(environment=environment, start=start, end=end, kommuner=kommuner)
    out: dict[str, _Figures] = defaultdict(_Figures)
    rejected = _fold_messages(out, await history.messages(session, w))
    if not out:
        return {}
    _fold_notifications(out, await history.notifications(session, w))
    # users at the year's end, from the register's episodes; the Bruker's items from its
    # `hendelse` rows (app/feedback/register_counts.py)
    _fold_register(
        out,
        [
            *await year_end_counts(session, environment, year, kommuner),
            *await person_item_counts(session, environment, (start, end), kommuner),
        ],
    )
    _fold_events(out, await history.events(session, w))
    _fold_rules(out, await history.rule_hits(session, w))
    dropped = {str(k): int(n) for k, n in await history.dropped(session, w)}
    for kommune, fig in out.items():
        fig.failed = dropped.get(kommune, 0) + rejected.get(kommune, 0)
    return dict(out)


def _fold_messages(out: dict[str, _Figures], rows: Iterable[Any]) -> dict[str, int]:
    """Messages: counts, readable, per month (Oslo time); returns the notifications in
    rejected messages per municipality."""
    months: dict[tuple[str, str], int] = defaultdict(int)
    rejected: dict[str, int] = defaultdict(int)
    for kommune, received, apprec, notification_count in rows:
        at = _aware(received)
        assert at is not None
        fig = out[kommune]
        months[(kommune, local_date(at).strftime("%Y-%m"))] += 1
        fig.messages += 1
        if apprec in READABLE:
            fig.readable += 1
            fig.first = at if fig.first is None or at < fig.first else fig.first
            fig.last = at if fig.last is None or at > fig.last else fig.last
        elif apprec == "2":
            rejected[kommune] += notification_count or 0
    for (kommune, month), total in months.items():
        out[kommune].put("month", month, total)
    return rejected


def _fold_notifications(out: dict[str, _Figures], rows: Iterable[Any]) -> None:
    for kommune, accepted, lopenr, mc, mc_ref in rows:
        out[kommune].accepted = int(accepted)
        out[kommune].put("item", "lopenr", lopenr, accepted)
        out[kommune].put("item", "ref", mc_ref, mc)


def _fold_register(out: dict[str, _Figures], counts: Iterable[Any]) -> None:
    for c in counts:
        if c.kommune_nr in out:  # a municipality with messages in the year's window
            out[c.kommune_nr].put(c.kind, c.key, c.value, c.total)


def _fold_events(out: dict[str, _Figures], rows: Iterable[Any]) -> None:
    for kommune, ev_total, dato, tid, org, ch, ch_org in rows:
        fig = out[kommune]
        fig.put("item", "hendelse_dato", dato, ev_total)
        fig.put("item", "tjeneste_id", tid, ev_total)
        fig.put("item", "org_nr", org, ev_total)
        fig.put("item", "org_nr_changed", ch_org, ch)


def _fold_rules(out: dict[str, _Figures], rows: Iterable[Any]) -> None:
    """Findings: per rule, the notifications (or, without one, the messages) it concerns."""
    by_rule: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for kommune, rule_id, consequence, whole, hits in rows:
        kind = "rule_error" if consequence in FAILING else "rule_warn"
        by_rule[(str(kommune), kind, str(rule_id))][1 if whole else 0] += cast(int, hits)
    for (kommune, kind, rule_id), (notifications, messages) in by_rule.items():
        out[kommune].put(kind, rule_id, notifications, messages)


def _top_rule(figures: _Figures) -> str | None:
    ranked = sorted(
        ((-v, -t, key) for (kind, key), (v, t) in figures.counts.items() if kind == "rule_error"),
    )
    return ranked[0][2] if ranked else None


async def _store(
    session: AsyncSession,
    environment: str,
    year: int,
    kommuner: Sequence[str] | None,
    computed: dict[str, _Figures],
    now: datetime,
) -> None:
    """Replace the rows of `kommuner` (None: all were deleted before) with `computed`."""
    if kommuner is not None:
        await repo.clear_kommuner(session, environment, year, kommuner)
    heads = [
        {
            "environment": environment,
            "year": year,
            "kommune_nr": kommune,
            "messages": fig.messages,
            "readable": fig.readable,
            "first_readable_at": fig.first,
            "last_readable_at": fig.last,
            "accepted": fig.accepted,
            "failed": fig.failed,
            "top_rule": _top_rule(fig),
            "refreshed_at": now,
        }
        for kommune, fig in computed.items()
        if fig.messages > 0
    ]
    rows = [
        {
            "environment": environment,
            "year": year,
            "kommune_nr": kommune,
            "kind": kind,
            "key": key[:60],
            "value": value,
            "total": total,
        }
        for kommune, fig in computed.items()
        if fig.messages > 0
        for (kind, key), (value, total) in fig.counts.items()
    ]
    await repo.insert_figures(session, heads, rows)


_chunks = repo.chunks


def _medians(
    heads: Iterable[repo.Head], counts: Iterable[repo.CountRow]
) -> dict[tuple[str, str], tuple[float, int]]:
    """National medians across the municipalities that delivered (a readable message), of
    the published figures only: a figure a municipality's page suppresses is left out (a
    median of five values is one of them), one it does not list counts as 0."""
    delivered = {h.kommune_nr: h for h in heads if h.readable > 0}
    by_kommune: dict[str, dict[tuple[str, str], tuple[int, int]]] = defaultdict(dict)
    keys: set[tuple[str, str]] = set()
    for c in counts:
        if c.kommune_nr in delivered:
            by_kommune[c.kommune_nr][(c.kind, c.key)] = (c.value, c.total)
            keys.add((c.kind, c.key))
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for k, head in delivered.items():
        for key, value in _published_values(k, head, by_kommune.get(k, {}), keys):
            values[key].append(value)
    return {k: (float(statistics.median(v)), len(v)) for k, v in values.items() if v}


def _shown(pub: Publication, figure: str) -> bool:
    status = pub.shares.get(figure, pub.counts.get(figure, Status.SHOWN))
    return status is Status.SHOWN


def _published_share(table: Table, pub: Publication, figure: str, of: int) -> float | None:
    if figure not in table.shares:  # not listed on the page: none of `of`
        return 0.0 if of > 0 else None
    if not _shown(pub, figure):
        return None
    return share_value(table, table.shares[figure])


def _published_values(
    k: str,
    head: repo.Head,
    mine: dict[tuple[str, str], tuple[int, int]],
    keys: Iterable[tuple[str, str]],
) -> list[tuple[tuple[str, str], float]]:
    """One delivered municipality's values of the medians, as its page publishes them."""
    out: list[tuple[tuple[str, str], float]] = []
    mt, mp = disclosure.messages_part(k, head, mine)
    ut, up = disclosure.users_part(mine)

    shown, share = _shown, _published_share

    def put(key: tuple[str, str], value: float | None) -> None:
        if value is not None:
            out.append((key, value))

    put(("headline", "error_share"), share(mt, mp, "error_share", 0))
    if shown(mp, "M"):
        put(("headline", "messages"), float(head.messages))
    if shown(mp, "A"):
        put(("headline", "accepted"), float(head.accepted))
    for key in keys:
        kind, name = key
        if kind == "users" and name == "total":
            if shown(up, "U"):
                put(key, float(ut.values["U"]))
        elif kind == "users":
            put(key, share(ut, up, f"g:{name}:share", 0))
        elif kind == "tjeneste":
            put(key, share(ut, up, f"t:{name}:share", ut.values["U"]))
        elif kind == "item":
            figure = f"f:{name}:share"
            if figure in mt.shares:  # an item the page shows
                put(key, share(mt, mp, figure, 0))
        elif kind in ("rule_error", "rule_warn"):
            received = head.accepted + head.failed
            put(key, share(mt, mp, f"r:{kind}:{name}", received))
        elif kind == "month":
            figure = f"m:{name}"
            if figure not in mt.values:  # no message that month
                put(key, 0.0)
            elif shown(mp, figure):
                put(key, float(mt.values[figure]))
    return out


async def _refresh_medians(session: AsyncSession, environment: str, year: int) -> None:
    heads, counts = await repo.year_figures(session, environment, year)
    # every delivered municipality's suppression decision (linear programs): in a worker
    # thread, so the event loop (the intake) goes on meanwhile
    medians = await asyncio.to_thread(_medians, heads, counts)
    await repo.replace_medians(session, environment, year, medians)


async def _touched(
    session: AsyncSession, settings: Settings, state: FeedbackState, top: int, full: bool
) -> set[tuple[str, str, int]]:
    """(environment, municipality, year) of the messages since the last refresh: above the
    watermark (primary key) or received within LOOKBACK before it (received_at index); two
    queries, so each uses its index. `full`: every message."""
    conditions = history.since_conditions(top, state.watermark, state.refreshed_at, LOOKBACK, full)
    spans: dict[tuple[str, str], tuple[datetime, datetime]] = {}
    for condition in conditions:
        for environment, kommune, first, last in await history.spans(session, condition):
            first_at, last_at = _aware(first), _aware(last)
            assert first_at is not None
            assert last_at is not None
            key = (str(environment), str(kommune))
            if key in spans:
                first_at = min(first_at, spans[key][0])
                last_at = max(last_at, spans[key][1])
            spans[key] = (first_at, last_at)
    return {
        (environment, kommune, year)
        for (environment, kommune), (first_at, last_at) in spans.items()
        for year in _years_of(settings, first_at, last_at)
    }


async def _their_other_years(
    session: AsyncSession, touched: set[tuple[str, str, int]]
) -> set[tuple[str, str, int]]:
    """The other reporting years with figures of the touched municipalities: their users at
    the year's end come from the register's episodes as they are now, which a message
    received later (a late correction or annulment, an end dated back) may change. The
    rest of a year's figures is read from the messages of its window, which a later message
    does not change."""
    by_environment: dict[str, set[str]] = defaultdict(set)
    for environment, kommune, _year in touched:
        by_environment[environment].add(kommune)
    out: set[tuple[str, str, int]] = set()
    for environment, kommuner in sorted(by_environment.items()):
        for kommune, year in await repo.kommune_years(session, environment, sorted(kommuner)):
            out.add((environment, kommune, year))
    return out - touched


YEAR_END_KINDS = ("users", "tjeneste", "tjeneste_stopp")


async def _recount_year_end(
    session: AsyncSession, environment: str, year: int, kommuner: Sequence[str]
) -> None:
    """Replace only the users at the year's end of `kommuner` (which have figures for the
    year) with the episodes' count now."""
    for chunk in _chunks(list(kommuner)):
        rows = [
            {
                "environment": environment,
                "year": year,
                "kommune_nr": c.kommune_nr,
                "kind": c.kind,
                "key": c.key[:60],
                "value": c.value,
                "total": c.total,
            }
            for c in await year_end_counts(session, environment, year, chunk)
        ]
        await repo.replace_counts_of_kinds(session, environment, year, chunk, YEAR_END_KINDS, rows)


async def refresh(
    session: AsyncSession, settings: Settings, *, full: bool = False, now: datetime | None = None
) -> RefreshReport:
    """Bring the aggregates up to date in `session` (the caller commits)."""
    now = now or datetime.now(UTC)
    report = RefreshReport()
    if not await repo.lock(session):
        report.skipped = True
        return report
    state = await repo.state(session, STATE)
    top = await history.top_message_id(session)
    full = full or state.watermark == 0
    if full:
        await repo.clear_all(session)
    touched = await _touched(session, settings, state, top, full)
    others: set[tuple[str, str, int]] = set()
    if not full:
        others = await _their_other_years(session, touched)
    await _recompute(session, settings, touched, full, now, report)
    await _recount_others(session, others, report)
    for environment, year in sorted(report.years):
        await _refresh_medians(session, environment, year)
    state.watermark = top
    state.refreshed_at = now
    if touched or full:
        state.generation += 1
    await session.flush()
    report.touched = len(touched)
    report.touched_keys = touched
    report.year_end_keys = others
    report.watermark = state.watermark
    report.generation = state.generation
    return report


def _by_year(keys: Iterable[tuple[str, str, int]]) -> list[tuple[tuple[str, int], set[str]]]:
    """(environment, year) with their municipalities, in order."""
    out: dict[tuple[str, int], set[str]] = defaultdict(set)
    for environment, kommune, year in keys:
        out[(environment, year)].add(kommune)
    return sorted(out.items())


async def _recompute(
    session: AsyncSession,
    settings: Settings,
    touched: set[tuple[str, str, int]],
    full: bool,
    now: datetime,
    report: RefreshReport,
) -> None:
    """Recompute the touched triples whole, a year at a time (`full`: every municipality)."""
    for (environment, year), kommuner in _by_year(touched):
        chosen = None if full else sorted(kommuner)
        computed: dict[str, _Figures] = {}
        for chunk in _chunks(chosen) if chosen is not None else [None]:
            computed.update(await _compute(session, settings, environment, year, chunk))
        await _store(session, environment, year, chosen, computed, now)
        report.years.add((environment, year))


async def _recount_others(
    session: AsyncSession, others: set[tuple[str, str, int]], report: RefreshReport
) -> None:
    for (environment, year), kommuner in _by_year(others):
        await _recount_year_end(session, environment, year, sorted(kommuner))
        report.years.add((environment, year))


async def refresh_once(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    full: bool = False,
    writer: SqliteWriter | None = None,
) -> RefreshReport:
    async with writer or contextlib.nullcontext(), sessions() as session:
        report = await refresh(session, settings, full=full)
        await session.commit()
    log.info(
        "feedback.refreshed",
        touched=report.touched,
        generation=report.generation,
        skipped=report.skipped,
        full=full,
    )
    return report


async def generation(session: AsyncSession) -> str:
    """The aggregates' version ("0" before the first refresh): the generation and the time of
    the refresh that made it, part of every ETag and cache key (a restored or recreated
    database starts its generations again)."""
    found = await repo.generation_state(session, STATE)
    if found is None:
        return "0"
    at = _aware(found[1])
    return f"{found[0]}.{int(at.timestamp() * 1000) if at else 0}"


async def run_loop(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    interval: float,
    writer: SqliteWriter | None = None,
    after: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Refresh every `interval` seconds until cancelled, then `after` (warming the pages'
    figures); an error waits for the next round."""
    await asyncio.sleep(min(interval, FIRST_DELAY_SECONDS))
    while True:
        try:
            await refresh_once(sessions, settings, writer=writer)
            if after is not None:
                await after()
        except Exception as exc:  # the database may be down: try again next round
            log.error("feedback.refresh_failed", error_type=type(exc).__name__)
        await asyncio.sleep(interval)
