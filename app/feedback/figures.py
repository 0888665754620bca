"""The feedback's figures as published: read from the aggregate tables (never from the
history), with every suppression applied (`app.feedback.suppress`). The pages, the JSON and
the CSV all render these models, so they show the same figures."""

from __future__ import annotations

import asyncio
import datetime
from collections import OrderedDict
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalogue import all_rules
from app.content.calendar import ReportingYear, extended, local_date
from app.core.findings import Consequence, Rule
from app.deadlines import repository as deadline_repo
from app.feedback import disclosure, suppress
from app.feedback.audit import Publication, Status, Table, share_value
from app.feedback.codes import (
    DISTRICT_ITEMS,
    ITEMS,
    USER_GROUPS,
    fylke_name,
    fylke_of,
    has_districts,
    tjenestetype_name,
)
from app.feedback.refresh import generation, rule_share_parts
from app.feedback.register_counts import year_end
from app.feedback.tables import FeedbackCount, FeedbackKommune, FeedbackMedian, FeedbackState
from app.kommuner.repository import kommuner_of
from app.query.reporting import year_entry
from app.settings import Settings

MIN_MEDIAN_KOMMUNER = 5  # a median over fewer municipalities is not shown


class Environment(StrEnum):
    PRODUCTION = "production"
    PILOT = "pilot"
    TEST = "test"


ENVIRONMENT_TEXT = {"production": "produksjon", "pilot": "pilot", "test": "test"}


class Figure(BaseModel):
    """A published figure: `value` is null whenever it is suppressed ("<5" or "skjult")."""

    value: float | None
    text: str
    suppressed: bool = False


class Median(BaseModel):
    value: float | None = Field(description="null when fewer than 5 municipalities delivered")
    text: str
    kommuner: int


def _fig(cell: suppress.Cell) -> Figure:
    return Figure(value=cell.value, text=cell.text, suppressed=cell.suppressed)


def _median(found: tuple[float, int] | None, *, percent: bool = True) -> Median:
    if found is None or found[1] < MIN_MEDIAN_KOMMUNER:
        return Median(value=None, text=suppress.NONE, kommuner=found[1] if found else 0)
    value = round(found[0], 1)
    text = suppress.fmt_pct(value) if percent else f"{value:.1f}".replace(".", ",")
    return Median(value=value, text=text, kommuner=found[1])


class Timeliness(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    MISSING = "missing"
    PENDING = "pending"


TIMELINESS_TEXT = {
    Timeliness.ON_TIME: "I tide",
    Timeliness.LATE: "Etter fristen",
    Timeliness.MISSING: "Ikke levert",
    Timeliness.PENDING: "Ikke levert ennå",
}


class OverviewRow(BaseModel):
    kommune_nr: str
    name: str
    fylke: str
    fylke_name: str
    readable: bool = Field(description="a readable message received (AppRec status 1 or 3)")
    first_readable: datetime.date | None
    messages: Figure
    accepted: Figure = Field(description="notifications accepted")
    error_share: Figure = Field(description="share of the notifications received with an error")
    top_rule: str | None = Field(description="the rule failing most often")
    top_rule_text: str | None
    timeliness: Timeliness
    timeliness_text: str
    after_kostra: bool = Field(description="readable data received after KOSTRA's 15 March")


class Headline(BaseModel):
    kommuner: int
    delivered: int
    on_time: int
    late: int
    after_kostra: int
    messages: Figure
    accepted: Figure
    error_share: Figure


class Overview(BaseModel):
    year: int
    environment: Environment
    deadline: datetime.date
    kostra: datetime.date
    correction_deadline: datetime.date
    refreshed_at: datetime.datetime | None
    generation: str
    headline: Headline
    pilot_delivered: int | None = Field(description="production only: delivered in the pilot")
    fylker: list[tuple[str, str]]
    kommuner: list[OverviewRow]


class GroupRow(BaseModel):
    key: str
    label: str
    users: Figure
    share: Figure
    median: Median


class ServiceRow(BaseModel):
    tjeneste_type: str
    name: str
    users: Figure = Field(description="users with an episode of this type active on 31 December")
    share: Figure = Field(description="share of the municipality's users")
    stopped: Figure = Field(
        description="of these users, those on a temporary stop of the service that day"
    )
    median: Median


class ItemRow(BaseModel):
    key: str
    item: str
    of: str
    filled: Figure = Field(description="share filled in")
    base: Figure = Field(description="how many it is a share of")
    median: Median


class RuleRow(BaseModel):
    rule_id: str
    consequence: str
    severity: str
    text: str = Field(description="the rule in Norwegian: what is wrong and what to do in EPJ")
    share: Figure
    basis: str
    median: Median


class MonthRow(BaseModel):
    month: str
    messages: Figure
    median: Median


class KommuneFeedback(BaseModel):
    kommune_nr: str
    name: str
    fylke_name: str
    year: int
    environment: Environment
    deadline: datetime.date
    kostra: datetime.date
    correction_deadline: datetime.date
    refreshed_at: datetime.datetime | None
    generation: str
    readable: bool
    first_readable: datetime.date | None
    last_readable: datetime.date | None
    timeliness: Timeliness
    timeliness_text: str
    after_kostra: bool
    messages: Figure
    messages_median: Median
    accepted: Figure
    accepted_median: Median
    error_share: Figure
    error_share_median: Median
    users_on: datetime.date = Field(
        description="the day users are counted on: 31 December of the year (docs/feedback.md)"
    )
    users: Figure
    user_groups: list[GroupRow]
    services: list[ServiceRow]
    items: list[ItemRow]
    rules: list[RuleRow]
    months: list[MonthRow]


CONSEQUENCE_TEXT = {
    Consequence.REJECT_MESSAGE.value: "Meldingen avvist",
    Consequence.DROP_NOTIFICATION.value: "Notifikasjonen ikke tatt imot",
    Consequence.KEEP_WITH_ERROR.value: "Feil (notifikasjonen lagret)",
    Consequence.WARN.value: "Advarsel (tatt imot)",
    Consequence.MESSAGE_ERROR.value: "Meldingen ikke mottatt",
}
EPJ_ADVICE = {
    Consequence.REJECT_MESSAGE.value: "Rett feilen i fagsystemet (EPJ) og send meldingen på nytt.",
    Consequence.DROP_NOTIFICATION.value: (
        "Rett registreringen i fagsystemet (EPJ) og send notifikasjonen på nytt."
    ),
    Consequence.KEEP_WITH_ERROR.value: (
        "Rett registreringen i fagsystemet (EPJ) og send en korreksjon (status M)."
    ),
    Consequence.WARN.value: "Kontroller og rett verdien i fagsystemet (EPJ).",
    Consequence.MESSAGE_ERROR.value: "Kontroller oppsettet for sending og send meldingen på nytt.",
}


def _rules() -> dict[str, Rule]:
    global _RULES
    if _RULES is None:
        _RULES = {r.id: r for r in all_rules()}
    return _RULES


_RULES: dict[str, Rule] | None = None


def rule_text(rule_id: str) -> tuple[str, str]:
    """The rule's Norwegian text with what to do in the EPJ, and its consequence."""
    rule = _rules().get(rule_id)
    if rule is None:
        return f"Regel {rule_id}.", Consequence.WARN.value
    text = rule.text_no
    if "EPJ" not in text:
        text = f"{text} {EPJ_ADVICE.get(rule.consequence.value, '')}".strip()
    return text, rule.consequence.value


def _count(table: Table, pub: Publication, var: str) -> Figure:
    status = pub.counts[var]
    if status is Status.SMALL:
        return _fig(suppress.Cell(None, suppress.SMALL, True))
    if status is Status.HIDDEN:
        return _fig(suppress.Cell(None, suppress.HIDDEN, True))
    n = table.values[var]
    return _fig(suppress.Cell(n, suppress.fmt_int(n)))


def _share(table: Table, pub: Publication, key: str) -> Figure:
    status = pub.shares[key]
    if status is Status.NONE:
        return _fig(suppress.Cell(None, suppress.NONE))
    if status is Status.SMALL:
        return _fig(suppress.Cell(None, suppress.SMALL, True))
    if status is Status.HIDDEN:
        return _fig(suppress.Cell(None, suppress.HIDDEN, True))
    pct = share_value(table, table.shares[key])
    assert pct is not None
    return _fig(suppress.Cell(pct, suppress.fmt_pct(pct)))


def _timeliness(
    entry: ReportingYear, first: datetime.datetime | None, now: datetime.datetime
) -> Timeliness:
    if first is None:
        return Timeliness.MISSING if local_date(now) > entry.deadline else Timeliness.PENDING
    return Timeliness.ON_TIME if local_date(first) <= entry.deadline else Timeliness.LATE


def _after_kostra(entry: ReportingYear, last: datetime.datetime | None) -> bool:
    return last is not None and entry.after_kostra(local_date(last))


# --- a small cache per generation: the aggregates change only when a refresh runs ----------

_CACHE: OrderedDict[tuple[object, ...], BaseModel] = OrderedDict()
_CACHE_SIZE = 256


def _cached(key: tuple[object, ...]) -> BaseModel | None:
    found = _CACHE.get(key)
    if found is not None:
        _CACHE.move_to_end(key)
    return found


def _remember(key: tuple[object, ...], value: BaseModel) -> None:
    _CACHE[key] = value
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)


async def _refreshed_at(session: AsyncSession) -> datetime.datetime | None:
    return await session.scalar(select(FeedbackState.refreshed_at))


async def _medians(
    session: AsyncSession, environment: str, year: int
) -> dict[tuple[str, str], tuple[float, int]]:
    rows = await session.execute(
        select(
            FeedbackMedian.kind, FeedbackMedian.key, FeedbackMedian.median, FeedbackMedian.kommuner
        ).where(FeedbackMedian.environment == environment, FeedbackMedian.year == year)
    )
    return {(k, key): (float(m), int(n)) for k, key, m, n in rows.all()}


async def overview(
    session: AsyncSession,
    settings: Settings,
    *,
    year: int,
    environment: Environment,
    now: datetime.datetime,
    gen: str | None = None,
) -> Overview:
    """Every municipality of the year's list, with its published figures."""
    gen = await generation(session) if gen is None else gen
    # a deadline granted a municipality changes its timeliness at once (not at a refresh)
    granted = await deadline_repo.extensions(session, year=year)
    key = ("overview", environment.value, year, gen, local_date(now), granted)
    found = _cached(key)
    if isinstance(found, Overview):
        return found
    entry = year_entry(settings, year)
    heads = {
        h.kommune_nr: h
        for h in (
            await session.scalars(
                select(FeedbackKommune).where(
                    FeedbackKommune.environment == environment.value, FeedbackKommune.year == year
                )
            )
        ).all()
    }
    kommuner = await kommuner_of(session, year)
    listed = {k.kommune_nr for k in kommuner}
    # each row shows its municipality's headline figures as its own page decides them
    by_kommune: dict[str, dict[tuple[str, str], tuple[int, int]]] = {}
    for c in (
        await session.execute(
            select(
                FeedbackCount.kommune_nr,
                FeedbackCount.kind,
                FeedbackCount.key,
                FeedbackCount.value,
                FeedbackCount.total,
            ).where(
                FeedbackCount.environment == environment.value,
                FeedbackCount.year == year,
                FeedbackCount.kind.in_(disclosure.MESSAGE_KINDS),
            )
        )
    ).all():
        by_kommune.setdefault(c[0], {})[(c[1], c[2])] = (int(c[3]), int(c[4]))
    # national figures are sums of the published cells only, so no subtraction can give a
    # suppressed cell back (docs/feedback.md)
    mine = {k: h for k, h in heads.items() if k in listed}
    # the decisions are linear programs: made in a worker thread, not on the event loop
    parts = await asyncio.to_thread(
        lambda: {k: disclosure.messages_part(k, h, by_kommune.get(k, {})) for k, h in mine.items()}
    )
    rows: list[OverviewRow] = []
    for k in kommuner:
        h = heads.get(k.kommune_nr)
        first = h.first_readable_at if h else None
        last = h.last_readable_at if h else None
        timeliness = _timeliness(extended(entry, k.kommune_nr, granted), first, now)
        top = h.top_rule if h else None
        if h is not None:
            table, pub = parts[k.kommune_nr]
            messages, accepted = _count(table, pub, "M"), _count(table, pub, "A")
            share = _share(table, pub, "error_share")
        else:
            messages = accepted = _fig(suppress.count(0))
            share = _fig(suppress.Cell(None, suppress.NONE))
        rows.append(
            OverviewRow(
                kommune_nr=k.kommune_nr,
                name=k.name,
                fylke=fylke_of(k.kommune_nr),
                fylke_name=fylke_name(fylke_of(k.kommune_nr)),
                readable=first is not None,
                first_readable=local_date(first) if first else None,
                messages=messages,
                accepted=accepted,
                error_share=share,
                top_rule=top,
                top_rule_text=rule_text(top)[0] if top else None,
                timeliness=timeliness,
                timeliness_text=TIMELINESS_TEXT[timeliness],
                after_kostra=_after_kostra(entry, last),
            )
        )
    # the national error share: over the municipalities whose share and accepted are both
    # published (each one's failed notifications are then given by its own row already)
    published = {
        r.kommune_nr
        for r in rows
        if r.error_share.value is not None and r.accepted.value is not None
    }
    failed_sum = sum(h.failed for k, h in mine.items() if k in published)
    received_sum = failed_sum + sum(h.accepted for k, h in mine.items() if k in published)
    headline = Headline(
        kommuner=len(rows),
        delivered=sum(1 for r in rows if r.readable),
        on_time=sum(1 for r in rows if r.timeliness is Timeliness.ON_TIME),
        late=sum(1 for r in rows if r.timeliness is Timeliness.LATE),
        after_kostra=sum(1 for r in rows if r.after_kostra),
        messages=_fig(suppress.count(_published_sum(r.messages for r in rows))),
        accepted=_fig(suppress.count(_published_sum(r.accepted for r in rows))),
        error_share=_fig(suppress.share(failed_sum, received_sum)),
    )
    pilot: int | None = None
    if environment is Environment.PRODUCTION:
        pilot = int(
            await session.scalar(
                select(func.count()).where(
                    FeedbackKommune.environment == Environment.PILOT.value,
                    FeedbackKommune.year == year,
                    FeedbackKommune.readable > 0,
                    FeedbackKommune.kommune_nr.in_(listed),
                )
            )
            or 0
        )
    fylker = sorted({(r.fylke, r.fylke_name) for r in rows})
    result = Overview(
        year=year,
        environment=environment,
        deadline=entry.deadline,
        kostra=entry.kostra_date,
        correction_deadline=entry.correction_deadline,
        refreshed_at=await _refreshed_at(session),
        generation=gen,
        headline=headline,
        pilot_delivered=pilot,
        fylker=fylker,
        kommuner=rows,
    )
    _remember(key, result)
    return result


def _published_sum(figures: Iterable[Figure]) -> int:
    return int(sum(f.value for f in figures if f.value is not None))


SORTS = {
    "kommune_nr": lambda r: (r.kommune_nr,),
    "name": lambda r: (r.name.casefold(), r.kommune_nr),
    "fylke": lambda r: (r.fylke_name, r.kommune_nr),
    "readable": lambda r: (not r.readable, r.kommune_nr),
    "messages": lambda r: (*_published(r.messages), r.kommune_nr),
    "accepted": lambda r: (*_published(r.accepted), r.kommune_nr),
    "error_share": lambda r: (*_published(r.error_share), r.kommune_nr),
    "top_rule": lambda r: (r.top_rule is None, r.top_rule or "", r.kommune_nr),
    "timeliness": lambda r: (
        list(Timeliness).index(r.timeliness),
        r.first_readable or datetime.date.max,
        r.kommune_nr,
    ),
}


def _published(f: Figure) -> tuple[int, float]:
    """Sort by what is published only: "<5" between 0 and 5, hidden and empty cells last (a
    suppressed cell must not be placed by its real value)."""
    if f.value is not None:
        return 0, f.value
    if f.text == suppress.SMALL:
        return 0, 2.5
    return 1, 0.0


def select_rows(
    rows: list[OverviewRow], *, fylke: str = "", q: str = "", sort: str = "kommune_nr", desc: bool
) -> list[OverviewRow]:
    needle = q.strip().casefold()
    out = [
        r
        for r in rows
        if (not fylke or r.fylke == fylke)
        and (not needle or needle in r.name.casefold() or needle in r.kommune_nr)
    ]
    return sorted(out, key=SORTS.get(sort, SORTS["kommune_nr"]), reverse=desc)


async def kommune_feedback(
    session: AsyncSession,
    settings: Settings,
    *,
    kommune_nr: str,
    name: str,
    year: int,
    environment: Environment,
    now: datetime.datetime,
    gen: str | None = None,
) -> KommuneFeedback:
    gen = await generation(session) if gen is None else gen
    granted = await deadline_repo.extensions(session, kommuner=[kommune_nr], year=year)
    key = ("kommune", environment.value, year, kommune_nr, gen, local_date(now), granted)
    found = _cached(key)
    if isinstance(found, KommuneFeedback):
        return found
    # the municipality's own deadline (`kpr-mottak calendar extend`), shown and judged by
    entry = extended(year_entry(settings, year), kommune_nr, granted)
    head = await session.get(FeedbackKommune, (environment.value, year, kommune_nr))
    counts: dict[tuple[str, str], tuple[int, int]] = {
        (c.kind, c.key): (c.value, c.total)
        for c in (
            await session.scalars(
                select(FeedbackCount).where(
                    FeedbackCount.environment == environment.value,
                    FeedbackCount.year == year,
                    FeedbackCount.kommune_nr == kommune_nr,
                )
            )
        ).all()
    }
    medians = await _medians(session, environment.value, year)
    messages = head.messages if head else 0
    accepted = head.accepted if head else 0
    failed = head.failed if head else 0
    received = accepted + failed
    first = head.first_readable_at if head else None
    last = head.last_readable_at if head else None
    timeliness = _timeliness(entry, first, now)

    (mtable, mpub), (utable, upub) = await asyncio.to_thread(
        lambda: (disclosure.messages_part(kommune_nr, head, counts), disclosure.users_part(counts))
    )
    user_groups = [
        GroupRow(
            key=g,
            label=label,
            users=_count(utable, upub, f"g:{g}"),
            share=_share(utable, upub, f"g:{g}:share"),
            median=_median(medians.get(("users", g))),
        )
        for g, label in USER_GROUPS.items()
    ]
    codes = [v.removeprefix("t:") for v in utable.counts if v.startswith("t:")]
    services = [
        ServiceRow(
            tjeneste_type=code,
            name=tjenestetype_name(code),
            users=_count(utable, upub, f"t:{code}"),
            share=_share(utable, upub, f"t:{code}:share"),
            stopped=_count(utable, upub, f"s:{code}"),
            median=_median(medians.get(("tjeneste", code))),
        )
        for code in sorted(codes, key=lambda c: (len(c), c))
    ]

    items = []
    for item_key, (item, of) in ITEMS.items():
        if item_key in DISTRICT_ITEMS and not has_districts(kommune_nr):
            continue
        items.append(
            ItemRow(
                key=item_key,
                item=item,
                of=of,
                filled=_share(mtable, mpub, f"f:{item_key}:share"),
                base=_count(mtable, mpub, disclosure.item_base(mtable, item_key)),
                median=_median(medians.get(("item", item_key))),
            )
        )

    rules = []
    for (kind, rule_id), (value, total) in counts.items():
        if kind not in ("rule_error", "rule_warn"):
            continue
        _num, den = rule_share_parts(value, total, received, messages)
        text, consequence = rule_text(rule_id)
        rules.append(
            RuleRow(
                rule_id=rule_id,
                consequence=CONSEQUENCE_TEXT.get(consequence, consequence),
                severity="feil" if kind == "rule_error" else "advarsel",
                text=text,
                share=_share(mtable, mpub, f"r:{kind}:{rule_id}"),
                basis="notifikasjoner" if den == received and value > 0 else "meldinger",
                median=_median(medians.get((kind, rule_id))),
            )
        )
    rules.sort(key=lambda r: (r.severity != "feil", -(r.share.value or 0.0), r.rule_id))

    month_keys = sorted(key for (kind, key) in counts if kind == "month")
    months = [
        MonthRow(
            month=k,
            messages=_count(mtable, mpub, f"m:{k}"),
            median=_median(medians.get(("month", k)), percent=False),
        )
        for k in month_keys
    ]
    result = KommuneFeedback(
        kommune_nr=kommune_nr,
        name=name,
        fylke_name=fylke_name(fylke_of(kommune_nr)),
        year=year,
        environment=environment,
        deadline=entry.deadline,
        kostra=entry.kostra_date,
        correction_deadline=entry.correction_deadline,
        refreshed_at=await _refreshed_at(session),
        generation=gen,
        readable=first is not None,
        first_readable=local_date(first) if first else None,
        last_readable=local_date(last) if last else None,
        timeliness=timeliness,
        timeliness_text=TIMELINESS_TEXT[timeliness],
        after_kostra=_after_kostra(entry, last),
        messages=_count(mtable, mpub, "M"),
        messages_median=_median(medians.get(("headline", "messages")), percent=False),
        accepted=_count(mtable, mpub, "A"),
        accepted_median=_median(medians.get(("headline", "accepted")), percent=False),
        error_share=_share(mtable, mpub, "error_share"),
        error_share_median=_median(medians.get(("headline", "error_share"))),
        users_on=year_end(year),
        users=_count(utable, upub, "U"),
        user_groups=user_groups,
        services=services,
        items=items,
        rules=rules,
        months=months,
    )
    _remember(key, result)
    return result
