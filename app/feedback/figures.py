"""The feedback's figures as published: read from the aggregate tables (never from the
history), with every suppression applied (`app.feedback.suppress`). The pages, the JSON and
the CSV all render these models, so they show the same figures."""

from __future__ import annotations

import asyncio
import datetime
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalogue import all_rules
from app.content.calendar import DeadlineExtension, ReportingYear, extended, local_date
from app.core.findings import Consequence, Rule
from app.deadlines import repository as deadline_repo
from app.feedback import disclosure, suppress
from app.feedback import repository as repo
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
from app.feedback.repository import Counts, Head, Medians
from app.kommuner.repository import kommuner_of
from app.kommuner.ssb import Kommune
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


@dataclass(frozen=True, slots=True, kw_only=True)
class OverviewInput:
    """Everything the overview is assembled from, read before (`load_overview`)."""

    year: int
    environment: Environment
    entry: ReportingYear
    now: datetime.datetime
    gen: str
    granted: tuple[DeadlineExtension, ...]
    kommuner: Sequence[Kommune]
    heads: Mapping[str, Head]
    counts: Mapping[str, Counts]
    refreshed_at: datetime.datetime | None
    pilot_delivered: int | None


Part = tuple[Table, Publication]


async def load_overview(
    session: AsyncSession,
    settings: Settings,
    *,
    year: int,
    environment: Environment,
    now: datetime.datetime,
    gen: str,
    granted: tuple[DeadlineExtension, ...],
) -> OverviewInput:
    kommuner = await kommuner_of(session, year)
    pilot: int | None = None
    if environment is Environment.PRODUCTION:
        listed = [k.kommune_nr for k in kommuner]
        pilot = await repo.delivered_count(session, Environment.PILOT.value, year, listed)
    return OverviewInput(
        year=year,
        environment=environment,
        entry=year_entry(settings, year),
        now=now,
        gen=gen,
        granted=granted,
        kommuner=kommuner,
        heads=await repo.heads(session, environment.value, year),
        counts=await repo.counts_by_kommune(
            session, environment.value, year, disclosure.MESSAGE_KINDS
        ),
        refreshed_at=await repo.refreshed_at(session),
        pilot_delivered=pilot,
    )


def _listed_heads(data: OverviewInput) -> dict[str, Head]:
    """The heads of the municipalities in the year's list: the national figures are sums of
    their published cells only, so no subtraction can give a suppressed cell back
    (docs/feedback.md)."""
    listed = {k.kommune_nr for k in data.kommuner}
    return {k: h for k, h in data.heads.items() if k in listed}


def overview_parts(data: OverviewInput) -> dict[str, Part]:
    """Each row's headline figures as its municipality's own page decides them (linear
    programs: the caller runs this in a worker thread)."""
    return {
        k: disclosure.messages_part(k, h, data.counts.get(k, {}))
        for k, h in _listed_heads(data).items()
    }


def _overview_row(data: OverviewInput, k: Kommune, parts: Mapping[str, Part]) -> OverviewRow:
    h = data.heads.get(k.kommune_nr)
    first = h.first_readable_at if h else None
    last = h.last_readable_at if h else None
    entry = extended(data.entry, k.kommune_nr, data.granted)
    timeliness = _timeliness(entry, first, data.now)
    top = h.top_rule if h else None
    if h is not None:
        table, pub = parts[k.kommune_nr]
        messages, accepted = _count(table, pub, "M"), _count(table, pub, "A")
        share = _share(table, pub, "error_share")
    else:
        messages = accepted = _fig(suppress.count(0))
        share = _fig(suppress.Cell(None, suppress.NONE))
    return OverviewRow(
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
        after_kostra=_after_kostra(data.entry, last),
    )


def _headline(rows: list[OverviewRow], mine: Mapping[str, Head]) -> Headline:
    # the national error share: over the municipalities whose share and accepted are both
    # published (each one's failed notifications are then given by its own row already)
    published = {
        r.kommune_nr
        for r in rows
        if r.error_share.value is not None and r.accepted.value is not None
    }
    failed_sum = sum(h.failed for k, h in mine.items() if k in published)
    received_sum = failed_sum + sum(h.accepted for k, h in mine.items() if k in published)
    return Headline(
        kommuner=len(rows),
        delivered=sum(1 for r in rows if r.readable),
        on_time=sum(1 for r in rows if r.timeliness is Timeliness.ON_TIME),
        late=sum(1 for r in rows if r.timeliness is Timeliness.LATE),
        after_kostra=sum(1 for r in rows if r.after_kostra),
        messages=_fig(suppress.count(_published_sum(r.messages for r in rows))),
        accepted=_fig(suppress.count(_published_sum(r.accepted for r in rows))),
        error_share=_fig(suppress.share(failed_sum, received_sum)),
    )


def assemble_overview(data: OverviewInput, parts: Mapping[str, Part]) -> Overview:
    """The overview from plain data and the rows' disclosure decisions (`overview_parts`)."""
    rows = [_overview_row(data, k, parts) for k in data.kommuner]
    return Overview(
        year=data.year,
        environment=data.environment,
        deadline=data.entry.deadline,
        kostra=data.entry.kostra_date,
        correction_deadline=data.entry.correction_deadline,
        refreshed_at=data.refreshed_at,
        generation=data.gen,
        headline=_headline(rows, _listed_heads(data)),
        pilot_delivered=data.pilot_delivered,
        fylker=sorted({(r.fylke, r.fylke_name) for r in rows}),
        kommuner=rows,
    )


def build_overview(data: OverviewInput) -> Overview:
    """`assemble_overview` with its decisions made here (tests, callers off the event loop)."""
    return assemble_overview(data, overview_parts(data))


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
    data = await load_overview(
        session, settings, year=year, environment=environment, now=now, gen=gen, granted=granted
    )
    # the decisions are linear programs: made in a worker thread, not on the event loop
    parts = await asyncio.to_thread(overview_parts, data)
    result = assemble_overview(data, parts)
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


@dataclass(frozen=True, slots=True, kw_only=True)
class KommuneInput:
    """Everything a municipality's page is assembled from, read before (`load_kommune`)."""

    kommune_nr: str
    name: str
    year: int
    environment: Environment
    entry: ReportingYear  # with the municipality's own deadline (`calendar extend`)
    now: datetime.datetime
    gen: str
    head: Head | None
    counts: Counts
    medians: Medians
    refreshed_at: datetime.datetime | None


async def load_kommune(
    session: AsyncSession,
    settings: Settings,
    *,
    kommune_nr: str,
    name: str,
    year: int,
    environment: Environment,
    now: datetime.datetime,
    gen: str,
    granted: tuple[DeadlineExtension, ...],
) -> KommuneInput:
    return KommuneInput(
        kommune_nr=kommune_nr,
        name=name,
        year=year,
        environment=environment,
        entry=extended(year_entry(settings, year), kommune_nr, granted),
        now=now,
        gen=gen,
        head=await repo.head(session, environment.value, year, kommune_nr),
        counts=await repo.kommune_counts(session, environment.value, year, kommune_nr),
        medians=await repo.medians(session, environment.value, year),
        refreshed_at=await repo.refreshed_at(session),
    )


def kommune_parts(data: KommuneInput) -> tuple[Part, Part]:
    """The page's messages and users parts with what of them is published (linear programs:
    the caller runs this in a worker thread)."""
    return (
        disclosure.messages_part(data.kommune_nr, data.head, data.counts),
        disclosure.users_part(data.counts),
    )


def _user_groups(users: Part, medians: Medians) -> list[GroupRow]:
    utable, upub = users
    return [
        GroupRow(
            key=g,
            label=label,
            users=_count(utable, upub, f"g:{g}"),
            share=_share(utable, upub, f"g:{g}:share"),
            median=_median(medians.get(("users", g))),
        )
        for g, label in USER_GROUPS.items()
    ]


def _services(users: Part, medians: Medians) -> list[ServiceRow]:
    utable, upub = users
    codes = [v.removeprefix("t:") for v in utable.counts if v.startswith("t:")]
    return [
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


def _items(kommune_nr: str, messages: Part, medians: Medians) -> list[ItemRow]:
    mtable, mpub = messages
    return [
        ItemRow(
            key=item_key,
            item=item,
            of=of,
            filled=_share(mtable, mpub, f"f:{item_key}:share"),
            base=_count(mtable, mpub, disclosure.item_base(mtable, item_key)),
            median=_median(medians.get(("item", item_key))),
        )
        for item_key, (item, of) in ITEMS.items()
        if item_key not in DISTRICT_ITEMS or has_districts(kommune_nr)
    ]


def _rule_rows(data: KommuneInput, messages: Part) -> list[RuleRow]:
    mtable, mpub = messages
    head = data.head
    received = (head.accepted + head.failed) if head else 0
    sent = head.messages if head else 0
    rules = []
    for (kind, rule_id), (value, total) in data.counts.items():
        if kind not in ("rule_error", "rule_warn"):
            continue
        _num, den = rule_share_parts(value, total, received, sent)
        text, consequence = rule_text(rule_id)
        rules.append(
            RuleRow(
                rule_id=rule_id,
                consequence=CONSEQUENCE_TEXT.get(consequence, consequence),
                severity="feil" if kind == "rule_error" else "advarsel",
                text=text,
                share=_share(mtable, mpub, f"r:{kind}:{rule_id}"),
                basis="notifikasjoner" if den == received and value > 0 else "meldinger",
                median=_median(data.medians.get((kind, rule_id))),
            )
        )
    rules.sort(key=lambda r: (r.severity != "feil", -(r.share.value or 0.0), r.rule_id))
    return rules


def _months(data: KommuneInput, messages: Part) -> list[MonthRow]:
    mtable, mpub = messages
    month_keys = sorted(key for (kind, key) in data.counts if kind == "month")
    return [
        MonthRow(
            month=k,
            messages=_count(mtable, mpub, f"m:{k}"),
            median=_median(data.medians.get(("month", k)), percent=False),
        )
        for k in month_keys
    ]


def assemble_kommune(data: KommuneInput, messages: Part, users: Part) -> KommuneFeedback:
    """A municipality's page from plain data and its disclosure decisions (`kommune_parts`)."""
    first = data.head.first_readable_at if data.head else None
    last = data.head.last_readable_at if data.head else None
    timeliness = _timeliness(data.entry, first, data.now)
    mtable, mpub = messages
    medians = data.medians
    return KommuneFeedback(
        kommune_nr=data.kommune_nr,
        name=data.name,
        fylke_name=fylke_name(fylke_of(data.kommune_nr)),
        year=data.year,
        environment=data.environment,
        deadline=data.entry.deadline,
        kostra=data.entry.kostra_date,
        correction_deadline=data.entry.correction_deadline,
        refreshed_at=data.refreshed_at,
        generation=data.gen,
        readable=first is not None,
        first_readable=local_date(first) if first else None,
        last_readable=local_date(last) if last else None,
        timeliness=timeliness,
        timeliness_text=TIMELINESS_TEXT[timeliness],
        after_kostra=_after_kostra(data.entry, last),
        messages=_count(mtable, mpub, "M"),
        messages_median=_median(medians.get(("headline", "messages")), percent=False),
        accepted=_count(mtable, mpub, "A"),
        accepted_median=_median(medians.get(("headline", "accepted")), percent=False),
        error_share=_share(mtable, mpub, "error_share"),
        error_share_median=_median(medians.get(("headline", "error_share"))),
        users_on=year_end(data.year),
        users=_count(users[0], users[1], "U"),
        user_groups=_user_groups(users, medians),
        services=_services(users, medians),
        items=_items(data.kommune_nr, messages, medians),
        rules=_rule_rows(data, messages),
        months=_months(data, messages),
    )


def build_kommune(data: KommuneInput) -> KommuneFeedback:
    """`assemble_kommune` with its decisions made here (tests, callers off the event loop)."""
    return assemble_kommune(data, *kommune_parts(data))


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
    data = await load_kommune(
        session,
        settings,
        kommune_nr=kommune_nr,
        name=name,
        year=year,
        environment=environment,
        now=now,
        gen=gen,
        granted=granted,
    )
    messages, users = await asyncio.to_thread(kommune_parts, data)
    result = assemble_kommune(data, messages, users)
    _remember(key, result)
    return result
