"""The feedback's aggregates, computed from the stored history and refreshed in the background
(`start_refresher`, from the app's lifespan) or by `kpr-mottak feedback refresh`.

Incremental: the refresh recomputes only the (environment, municipality, reporting year)
triples that messages received since the last refresh touch: messages with an id above the
watermark, and, because a message's id is taken before its transaction commits, those received
within `LOOKBACK` before the last refresh. Each triple is recomputed whole from the history
(one municipality's messages of one year: indexed), never patched by difference, so a refresh
that runs twice gives the same figures. `full=True` recomputes everything (after retention has
deleted messages, or a restore).

Only counts leave this module; brukerNr is counted (DISTINCT) inside the database and never
read into Python. One refresher at a time: a transaction-scoped advisory lock on PostgreSQL,
the app's writer lock on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import and_, case, delete, distinct, exists, func, insert, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from app.content.calendar import local_date
from app.feedback.codes import AT_HOME, LONG_TERM
from app.feedback.tables import FeedbackCount, FeedbackKommune, FeedbackMedian, FeedbackState
from app.logging import get_logger
from app.models import Finding, IplosEvent, IplosNotification, Message, Receipt
from app.query.reporting import received_window, year_entry
from app.settings import Settings

log = get_logger(__name__)

STATE = "main"
LOOKBACK = timedelta(minutes=15)
READABLE = ("1", "3")
FAILING = ("drop_notification", "reject_message", "message_error")
DEFAULT_INTERVAL_SECONDS = 300.0
FIRST_DELAY_SECONDS = 5.0
_LOCK_KEY = 7_141_414  # pg advisory lock id of the feedback refresher


@dataclass
class RefreshReport:
    touched: int = 0  # (environment, municipality, year) triples recomputed
    touched_keys: set[tuple[str, str, int]] = field(default_factory=set)
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
    session: AsyncSession, settings: Settings, environment: str, kommune: str, year: int
) -> _Figures:
    start, end = received_window(year_entry(settings, year))
    m, r, n, e, f = Message, Receipt, IplosNotification, IplosEvent, Finding
    in_window = and_(
        m.environment == environment,
        m.kommune_nr == kommune,
        m.received_at >= start,
        m.received_at < end,
    )
    out = _Figures()
    # messages: counts, readable, per month (Oslo time), notifications in rejected messages
    rows = await session.execute(
        select(m.received_at, r.apprec_status, m.notification_count)
        .outerjoin(r, r.message_id == m.id)
        .where(in_window)
    )
    months: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    rejected_rows = 0
    for received, apprec, notification_count in rows.all():
        at = _aware(received)
        assert at is not None
        month = local_date(at).strftime("%Y-%m")
        months[month][0] += 1
        out.messages += 1
        if apprec in READABLE:
            out.readable += 1
            months[month][1] += 1
            out.first = at if out.first is None or at < out.first else out.first
            out.last = at if out.last is None or at > out.last else out.last
        elif apprec == "2":
            rejected_rows += notification_count or 0
    for month, (total, readable) in months.items():
        out.put("month", month, total, readable)
    if out.messages == 0:
        return out

    stored = and_(
        n.environment == environment,
        n.kommune_nr == kommune,
        m.id == n.message_id,
        m.received_at >= start,
        m.received_at < end,
    )
    corrections = n.status.in_(("M", "C"))
    accepted, lopenr, mc, mc_ref = (
        await session.execute(
            select(
                func.count(n.id),
                func.count(n.lopenr),
                func.count(case((corrections, 1))),
                func.count(case((and_(corrections, n.ref.is_not(None)), 1))),
            )
            .select_from(n)
            .join(m, m.id == n.message_id)
            .where(stored)
        )
    ).one()
    out.accepted = int(accepted)
    out.put("item", "lopenr", lopenr, accepted)
    out.put("item", "ref", mc_ref, mc)

    # events of notifications in force: not annulments, not annulled by a later C row
    annul = aliased(IplosNotification)
    annulled = exists().where(
        annul.environment == n.environment,
        annul.kommune_nr == n.kommune_nr,
        annul.ref == n.guid,
        annul.status == "C",
    )
    in_force = and_(stored, n.status != "C", ~annulled)
    per_type = await session.execute(
        select(e.tjeneste_type, func.count(distinct(n.bruker_nr)))
        .select_from(n)
        .join(m, m.id == n.message_id)
        .join(e, e.notification_id == n.id)
        .where(in_force)
        .group_by(e.tjeneste_type)
    )
    for code, users in per_type.all():
        out.put("tjeneste", str(code), users)
    long_term = func.max(case((e.tjeneste_type.in_(LONG_TERM), 1), else_=0)).label("lt")
    home = func.max(case((e.tjeneste_type.in_(AT_HOME), 1), else_=0)).label("home")
    per_user = (
        select(n.bruker_nr, long_term, home)
        .select_from(n)
        .join(m, m.id == n.message_id)
        .join(e, e.notification_id == n.id)
        .where(in_force)
        .group_by(n.bruker_nr)
        .subquery()
    )
    user_row: tuple[Any, ...] = tuple(
        (
            await session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(per_user.c.lt), 0),
                    func.coalesce(
                        func.sum(
                            case((and_(per_user.c.lt == 0, per_user.c.home == 1), 1), else_=0)
                        ),
                        0,
                    ),
                ).select_from(per_user)
            )
        ).one()
    )
    users, lt_users, home_users = (int(x or 0) for x in user_row)
    out.put("users", "total", users)
    out.put("users", "long_term", lt_users)
    out.put("users", "home", home_users)
    out.put("users", "other", users - lt_users - home_users)

    changed = e.kind == "TjenesteutforerEndret"
    ev_total, dato, tid, org, ch, ch_org = (
        await session.execute(
            select(
                func.count(e.id),
                func.count(e.hendelse_dato),
                func.count(case((e.tjeneste_id != "", 1))),
                func.count(e.tjeneste_org_nr),
                func.count(case((changed, 1))),
                func.count(case((and_(changed, e.tjeneste_org_nr.is_not(None)), 1))),
            )
            .select_from(n)
            .join(m, m.id == n.message_id)
            .join(e, e.notification_id == n.id)
            .where(stored)
        )
    ).one()
    out.put("item", "hendelse_dato", dato, ev_total)
    out.put("item", "tjeneste_id", tid, ev_total)
    out.put("item", "org_nr", org, ev_total)
    out.put("item", "org_nr_changed", ch_org, ch)

    # findings: per rule, the notifications (or, without one, the messages) it concerns
    per_finding = (
        select(f.rule_id, f.consequence, f.message_id, f.notification_guid)
        .distinct()
        .join(m, m.id == f.message_id)
        .where(in_window)
        .subquery()
    )
    by_rule: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    rule_rows = await session.execute(
        select(
            per_finding.c.rule_id,
            per_finding.c.consequence,
            per_finding.c.notification_guid.is_(None),
            func.count(),
        ).group_by(
            per_finding.c.rule_id,
            per_finding.c.consequence,
            per_finding.c.notification_guid.is_(None),
        )
    )
    for rule_id, consequence, message_level, hits in rule_rows.all():
        kind = "rule_error" if consequence in FAILING else "rule_warn"
        by_rule[(kind, str(rule_id))][1 if message_level else 0] += cast(int, hits)
    for (kind, rule_id), (notifications, messages) in by_rule.items():
        out.put(kind, rule_id, notifications, messages)
    failed_rows = (
        await session.scalar(
            select(func.count()).select_from(
                select(f.message_id, f.notification_guid)
                .distinct()
                .join(m, m.id == f.message_id)
                .where(
                    in_window,
                    f.consequence == "drop_notification",
                    f.notification_guid.is_not(None),
                )
                .subquery()
            )
        )
        or 0
    )
    out.failed = int(failed_rows) + rejected_rows
    return out


def _top_rule(figures: _Figures) -> str | None:
    ranked = sorted(
        ((-v, -t, key) for (kind, key), (v, t) in figures.counts.items() if kind == "rule_error"),
    )
    return ranked[0][2] if ranked else None


async def _store(
    session: AsyncSession,
    environment: str,
    kommune: str,
    year: int,
    figures: _Figures,
    now: datetime,
) -> None:
    await session.execute(
        delete(FeedbackCount).where(
            FeedbackCount.environment == environment,
            FeedbackCount.year == year,
            FeedbackCount.kommune_nr == kommune,
        )
    )
    await session.execute(
        delete(FeedbackKommune).where(
            FeedbackKommune.environment == environment,
            FeedbackKommune.year == year,
            FeedbackKommune.kommune_nr == kommune,
        )
    )
    if figures.messages == 0:
        return
    session.add(
        FeedbackKommune(
            environment=environment,
            year=year,
            kommune_nr=kommune,
            messages=figures.messages,
            readable=figures.readable,
            first_readable_at=figures.first,
            last_readable_at=figures.last,
            accepted=figures.accepted,
            failed=figures.failed,
            top_rule=_top_rule(figures),
            refreshed_at=now,
        )
    )
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
        for (kind, key), (value, total) in figures.counts.items()
    ]
    if rows:
        await session.execute(insert(FeedbackCount), rows)
    await session.flush()


def rule_share_parts(value: int, total: int, received: int, messages: int) -> tuple[int, int]:
    """A rule's numerator and denominator: the notifications it concerns of those received,
    or, for a rule about whole messages, the messages."""
    if value > 0 or total == 0:
        return value, received
    return total, messages


def _medians(
    heads: Iterable[FeedbackKommune], counts: Iterable[FeedbackCount]
) -> dict[tuple[str, str], tuple[float, int]]:
    """National medians across the municipalities that delivered (a readable message)."""
    delivered = {h.kommune_nr: h for h in heads if h.readable > 0}
    by_kommune: dict[str, dict[tuple[str, str], tuple[int, int]]] = defaultdict(dict)
    keys: set[tuple[str, str]] = set()
    for c in counts:
        if c.kommune_nr in delivered:
            by_kommune[c.kommune_nr][(c.kind, c.key)] = (c.value, c.total)
            keys.add((c.kind, c.key))
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for k, head in delivered.items():
        mine = by_kommune.get(k, {})
        received = head.accepted + head.failed
        users = mine.get(("users", "total"), (0, 0))[0]
        if received > 0:
            values[("headline", "error_share")].append(100.0 * head.failed / received)
        values[("headline", "messages")].append(float(head.messages))
        values[("headline", "accepted")].append(float(head.accepted))
        for key in keys:
            kind, name = key
            value, total = mine.get(key, (0, 0))
            if kind in ("users", "tjeneste"):
                if users > 0 and name != "total":
                    values[key].append(100.0 * value / users)
                elif name == "total":
                    values[key].append(float(value))
            elif kind == "item":
                if total > 0:
                    values[key].append(100.0 * value / total)
            elif kind in ("rule_error", "rule_warn"):
                num, den = rule_share_parts(value, total, received, head.messages)
                if den > 0:
                    values[key].append(100.0 * num / den)
            elif kind == "month":
                values[key].append(float(value))
    return {k: (float(statistics.median(v)), len(v)) for k, v in values.items() if v}


async def _refresh_medians(session: AsyncSession, environment: str, year: int) -> None:
    heads = (
        await session.scalars(
            select(FeedbackKommune).where(
                FeedbackKommune.environment == environment, FeedbackKommune.year == year
            )
        )
    ).all()
    counts = (
        await session.scalars(
            select(FeedbackCount).where(
                FeedbackCount.environment == environment, FeedbackCount.year == year
            )
        )
    ).all()
    await session.execute(
        delete(FeedbackMedian).where(
            FeedbackMedian.environment == environment, FeedbackMedian.year == year
        )
    )
    rows = [
        {
            "environment": environment,
            "year": year,
            "kind": kind,
            "key": key,
            "median": median,
            "kommuner": n,
        }
        for (kind, key), (median, n) in _medians(heads, counts).items()
    ]
    if rows:
        await session.execute(insert(FeedbackMedian), rows)


async def _lock(session: AsyncSession) -> bool:
    if (await session.connection()).dialect.name != "postgresql":
        return True
    got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    return bool(got)


async def _touched(
    session: AsyncSession, settings: Settings, state: FeedbackState, top: int, full: bool
) -> set[tuple[str, str, int]]:
    m = Message
    where = [m.kommune_nr.is_not(None), m.environment.is_not(None), m.id <= top]
    if not full:
        since = (state.refreshed_at or datetime.min.replace(tzinfo=UTC)) - LOOKBACK
        lookback = m.received_at >= since if state.refreshed_at is not None else literal(False)
        where.append((m.id > state.watermark) | lookback)
    rows = await session.execute(
        select(m.environment, m.kommune_nr, func.min(m.received_at), func.max(m.received_at))
        .where(*where)
        .group_by(m.environment, m.kommune_nr)
    )
    out: set[tuple[str, str, int]] = set()
    for environment, kommune, first, last in rows.all():
        first_at, last_at = _aware(first), _aware(last)
        assert first_at is not None
        assert last_at is not None
        for year in _years_of(settings, first_at, last_at):
            out.add((str(environment), str(kommune), year))
    return out


async def refresh(
    session: AsyncSession, settings: Settings, *, full: bool = False, now: datetime | None = None
) -> RefreshReport:
    """Bring the aggregates up to date in `session` (the caller commits)."""
    now = now or datetime.now(UTC)
    report = RefreshReport()
    if not await _lock(session):
        report.skipped = True
        return report
    state = await session.get(FeedbackState, STATE)
    if state is None:
        state = FeedbackState(name=STATE, watermark=0, generation=0)
        session.add(state)
        await session.flush()
    top = int(await session.scalar(select(func.coalesce(func.max(Message.id), 0))) or 0)
    full = full or state.watermark == 0
    if full:
        await session.execute(delete(FeedbackCount))
        await session.execute(delete(FeedbackKommune))
        await session.execute(delete(FeedbackMedian))
    touched = await _touched(session, settings, state, top, full)
    for environment, kommune, year in sorted(touched):
        figures = await _compute(session, settings, environment, kommune, year)
        await _store(session, environment, kommune, year, figures, now)
        report.years.add((environment, year))
    for environment, year in sorted(report.years):
        await _refresh_medians(session, environment, year)
    state.watermark = top
    state.refreshed_at = now
    if touched or full:
        state.generation += 1
    await session.flush()
    report.touched = len(touched)
    report.touched_keys = touched
    report.watermark = state.watermark
    report.generation = state.generation
    return report


async def refresh_once(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    full: bool = False,
    writer: asyncio.Lock | None = None,
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
    found = (
        await session.execute(
            select(FeedbackState.generation, FeedbackState.refreshed_at).where(
                FeedbackState.name == STATE
            )
        )
    ).one_or_none()
    if found is None:
        return "0"
    at = _aware(found[1])
    return f"{found[0]}.{int(at.timestamp() * 1000) if at else 0}"


async def run_loop(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    interval: float,
    writer: asyncio.Lock | None = None,
) -> None:
    """Refresh every `interval` seconds until cancelled; an error waits for the next round."""
    await asyncio.sleep(min(interval, FIRST_DELAY_SECONDS))
    while True:
        try:
            await refresh_once(sessions, settings, writer=writer)
        except Exception as exc:  # the database may be down: try again next round
            log.error("feedback.refresh_failed", error_type=type(exc).__name__)
        await asyncio.sleep(interval)
