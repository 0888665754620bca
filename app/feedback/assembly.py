"""The feedback's pages assembled from what was read (`OverviewInput`, `KommuneInput`): pure, no
database; the suppression decisions (`overview_parts`, `kommune_parts`) are linear programs,
made off the event loop by the caller.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.content.calendar import DeadlineExtension, ReportingYear, extended, local_date
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
from app.feedback.figures import (
    CONSEQUENCE_TEXT,
    MIN_MEDIAN_KOMMUNER,
    TIMELINESS_TEXT,
    Environment,
    Figure,
    GroupRow,
    Headline,
    ItemRow,
    KommuneFeedback,
    Median,
    MonthRow,
    Overview,
    OverviewRow,
    RuleRow,
    ServiceRow,
    Timeliness,
    _published_sum,
    rule_text,
)
from app.feedback.register_counts import year_end
from app.feedback.repository import Counts, Head, Medians
from app.feedback.shares import rule_share_parts
from app.kommuner.ssb import Kommune


def _fig(cell: suppress.Cell) -> Figure:
    return Figure(value=cell.value, text=cell.text, suppressed=cell.suppressed)


def _median(found: tuple[float, int] | None, *, percent: bool = True) -> Median:
    if found is None or found[1] < MIN_MEDIAN_KOMMUNER:
        return Median(value=None, text=suppress.NONE, kommuner=found[1] if found else 0)
    value = round(found[0], 1)
    text = suppress.fmt_pct(value) if percent else f"{value:.1f}".replace(".", ",")
    return Median(value=value, text=text, kommuner=found[1])


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
