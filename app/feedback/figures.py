"""The feedback's figures as published, with every suppression applied (`app.feedback.suppress`):
the models and their texts. The pages, the JSON and the CSV all render these models, so they
show the same figures; `loading` reads them from the aggregate tables (never from the history),
`assembly` builds them."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, Field

from app.catalogue import all_rules
from app.core.findings import Consequence, Rule
from app.feedback import suppress

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
