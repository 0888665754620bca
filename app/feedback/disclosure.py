"""Which of a municipality's figures the public feedback may show: primary suppression of the
small cells, then secondary suppression until the disclosure audit (`app.feedback.audit`)
finds no suppressed cell that the rest of the page gives back. Pure, no I/O.

The secondary suppression is greedy: while some protected cell can be narrowed down, it hides,
for each such cell, one figure among those whose constraints bind the cell's range in the
audit's linear programs (their dual values are non-zero; without any, those linked to it at
all): a "<5" count (then "skjult") before a shown figure, parts before totals, non-zero
before zero, the smallest first; the shares of a hidden count go with it. It stops when the
audit passes. It is not minimal: another choice may hide fewer figures (docs/feedback.md).

`users_table` and `messages_table` describe a page's two independent parts (no variable is
shared between them); the overview shows the messages part's headline figures of every
municipality, with the same decisions as the municipality's own page.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Protocol

from app.feedback.audit import (
    Auditor,
    Constraint,
    Publication,
    Share,
    Status,
    Table,
    share_parts,
    small,
)
from app.feedback.codes import (
    AT_HOME,
    DISTRICT_ITEMS,
    ITEMS,
    LONG_TERM,
    USER_GROUPS,
    has_districts,
)
from app.feedback.shares import rule_share_parts

MAX_ROUNDS = 100


def primary(table: Table) -> Publication:
    """Every count from 1 to 4 is "<5"; a share is suppressed when its numerator, denominator
    or complement is from 1 to 4, or when a count it follows is suppressed."""
    counts = {v: Status.SMALL if small(table.values[v]) else Status.SHOWN for v in table.counts}
    shares: dict[str, Status] = {}
    for key, share in table.shares.items():
        if table.value(share.den) <= 0:
            shares[key] = Status.NONE
        elif any(small(table.value(e)) for e in share_parts(table, share).values()):
            shares[key] = Status.SMALL
        elif any(counts[c] is not Status.SHOWN for c in share.follows):
            shares[key] = Status.HIDDEN
        else:
            shares[key] = Status.SHOWN
    return Publication(counts, shares)


def _shown(pub: Publication) -> set[str]:
    return {k for k, s in pub.counts.items() if s is Status.SHOWN} | {
        k for k, s in pub.shares.items() if s is Status.SHOWN
    }


def _small(pub: Publication) -> set[str]:
    return {k for k, s in pub.counts.items() if s is Status.SMALL} | {
        k for k, s in pub.shares.items() if s is Status.SMALL
    }


def _connected(table: Table, label: str, pub: Publication) -> set[str]:
    """The shown figures linked to a protected expression through any chain of relations:
    the fallback when no constraint binds in the audit's solution (a degenerate optimum)."""
    from app.feedback.audit import protected, published

    expr = protected(table, pub)[label][0]
    reach = set(expr)
    constraints = [*table.structure, *published(table, pub)]
    grown = True
    while grown:
        grown = False
        for c in constraints:
            if reach & set(c.expr) and not set(c.expr) <= reach:
                reach |= set(c.expr)
                grown = True
    shown = _shown(pub) | _small(pub)
    out = {v for v in table.counts if v in reach and pub.counts[v] is not Status.HIDDEN}
    for key, share in table.shares.items():
        if key in shown and reach & (set(share.num) | set(share.den)):
            out.add(key)
    return out


def _priority(table: Table, pub: Publication, figure: str) -> tuple[bool, bool, bool, float, str]:
    """Which figure to hide first: a "<5" before a shown figure (it then reads "skjult",
    which costs the reader least: 1 to 4 was all it said), a part before a total, a non-zero
    figure before a zero, the smallest first."""
    if figure in table.shares:
        value = table.value(table.shares[figure].num)
    else:
        value = table.values[figure]
    was_small = Status.SMALL in (pub.counts.get(figure), pub.shares.get(figure))
    return (not was_small, figure in table.totals, value == 0, value, figure)


def protect(table: Table) -> Publication:
    """The publication: primary suppression, then secondary until the audit passes."""
    pub = primary(table)
    auditor = Auditor(table, pub)
    for _ in range(MAX_ROUNDS):
        findings = auditor.findings()
        if not findings:
            return pub
        chosen: set[str] = set()
        open_ = _shown(pub) | _small(pub)
        for finding in findings:
            candidates = (finding.binding & open_) or _connected(table, finding.label, pub)
            if candidates and not candidates & chosen:
                chosen.add(min(candidates, key=lambda f: _priority(table, pub, f)))
        if not chosen:
            break
        for figure in chosen:
            auditor.hide(figure)
    # nothing left to hide that would help: hide every shown figure (never reached in the
    # property tests; the guard keeps a page from ever showing a narrowed cell)
    for figure in _shown(pub) | set(pub.counts):
        auditor.hide(figure)
    return pub


# --- the page's two parts ---------------------------------------------------------------

GROUPS = ("long_term", "home", "other")


def users_table(
    users: int,
    groups: Mapping[str, int],
    by_type: Mapping[str, int],
    stopped: Mapping[str, int],
) -> Table:
    """The users on 31 December: all users `U`, the groups long-term `g:long_term`, at home
    `g:home` and other `g:other` (a partition of U), the users per service type `t:<code>`
    and of them those on a temporary stop `s:<code>`. A user may have several types, so the
    types are tied to the groups through latent counts `y:<code>:<group>` (the users of the
    type in the group): 21 is the long-term group exactly, a service at home is never in
    the other group, every user at home has a service at home and every other user some
    other institution service (app/feedback/codes.py)."""
    values: dict[str, int] = {"U": users}
    for g in GROUPS:
        values[f"g:{g}"] = groups.get(g, 0)
    for code, n in by_type.items():
        values[f"t:{code}"] = n
        values[f"s:{code}"] = stopped.get(code, 0)
    t = Table(values=values, counts=list(values), totals={"U"})
    t.relate({"U": 1.0, **{f"g:{g}": -1.0 for g in GROUPS}}, 0, 0)
    home_cover: dict[str, float] = {"g:home": -1.0}
    other_cover: dict[str, float] = {"g:other": -1.0}
    for code in by_type:
        tv, sv = f"t:{code}", f"s:{code}"
        t.relate({tv: 1.0}, 1, None)  # a type is listed only with users
        t.relate({sv: 1.0, tv: -1.0}, None, 0)  # those on a stop are some of its users
        t.complements[f"{tv}:receiving"] = {tv: 1.0, sv: -1.0}
        if code in LONG_TERM:
            in_groups = ["long_term"]
        elif code in AT_HOME:
            in_groups = ["long_term", "home"]
        else:
            in_groups = list(GROUPS)
        parts: dict[str, float] = {tv: -1.0}
        for g in in_groups:
            y = f"y:{code}:{g}"
            t.latent.add(y)
            parts[y] = 1.0
            t.structure.append(_le(y, f"g:{g}"))
            if g == "home" and code in AT_HOME:
                home_cover[y] = 1.0
            if g == "other":
                other_cover[y] = 1.0
        t.structure.append(_eq(parts))
        if code in LONG_TERM:
            t.relate({tv: 1.0, "g:long_term": -1.0}, 0, 0)
        t.shares[f"{tv}:share"] = Share(f"{tv}:share", {tv: 1.0}, {"U": 1.0}, (tv, "U"))
    if not any(c in LONG_TERM for c in by_type):
        t.relate({"g:long_term": 1.0}, 0, 0)
    t.structure.append(_ge(home_cover))
    t.structure.append(_ge(other_cover))
    for g in GROUPS:
        gv = f"g:{g}"
        t.shares[f"{gv}:share"] = Share(f"{gv}:share", {gv: 1.0}, {"U": 1.0}, (gv, "U"))
    return t


def _le(a: str, b: str) -> Constraint:
    return Constraint({a: 1.0, b: -1.0}, None, 0)


def _eq(expr: dict[str, float]) -> Constraint:
    return Constraint(expr, 0, 0)


def _ge(expr: dict[str, float]) -> Constraint:
    return Constraint(expr, 0, None)


# items whose bases are the same count (when the data agree): the events of the stored
# notifications, the Bruker's events in the register store, the accepted notifications
ITEM_BASES = {
    "lopenr": "A",
    "hendelse_dato": "base:events",
    "tjeneste_id": "base:events",
    "org_nr": "base:events",
    "type_id": "base:person",
    "bydel": "base:person",
}


def item_base(table: Table, key: str) -> str:
    """The variable an item's base is shown as (`messages_table`)."""
    return next(iter(table.shares[f"f:{key}:share"].den))


def messages_table(
    messages: int,
    accepted: int,
    failed: int,
    readable: bool,
    months: Mapping[str, int],
    items: Mapping[str, tuple[int, int]],
    rules: Mapping[tuple[str, str], tuple[int, int]],
) -> Table:
    """The messages `M` (the months `m:<YYYY-MM>` add up to them), notifications accepted
    `A` and with errors `F` (never shown, but in the error share F/(A+F)), each item's filled
    `f:<item>` of its base (`base:<item>`, or `A` / the events where the bases are those),
    each rule's notifications or messages concerned `r:<kind>:<id>` of the notifications
    received (A+F) or the messages. `items` and `rules` as in `feedback_count`: (value,
    total); the rules' shares as `app.feedback.shares.rule_share_parts` makes them."""
    values: dict[str, int] = {"M": messages, "A": accepted, "F": failed}
    for k, n in months.items():
        values[f"m:{k}"] = n
    counts = ["M", "A", *(f"m:{k}" for k in months)]
    bases: dict[str, str] = {}
    for key, (_filled, base) in items.items():
        name = ITEM_BASES.get(key, f"base:{key}")
        if name in values and values[name] != base:
            name = f"base:{key}"  # the data disagree: a count of its own
        values[name] = base
        bases[key] = name
        if name not in counts:
            counts.append(name)
        values[f"f:{key}"] = items[key][0]
    t = Table(values=values, counts=counts, totals={"M", "A"})
    if months:
        t.relate({"M": 1.0, **{f"m:{k}": -1.0 for k in months}}, 0, 0)
    if readable:
        t.relate({"M": 1.0}, 1, None)
    received = {"A": 1.0, "F": 1.0}
    t.shares["error_share"] = Share("error_share", {"F": 1.0}, received)
    for key, name in bases.items():
        fv = f"f:{key}"
        t.relate({fv: 1.0, name: -1.0}, None, 0)
        t.shares[f"{fv}:share"] = Share(f"{fv}:share", {fv: 1.0}, {name: 1.0})
    if "ref" in bases:  # M/C notifications are some of those accepted
        t.relate({bases["ref"]: 1.0, "A": -1.0}, None, 0)
    if "org_nr_changed" in bases and "hendelse_dato" in bases:
        t.relate({bases["org_nr_changed"]: 1.0, bases["hendelse_dato"]: -1.0}, None, 0)
    _relate_rules(t, rules, notifications=accepted + failed, messages=messages)
    return t


def _relate_rules(
    t: Table,
    rules: Mapping[tuple[str, str], tuple[int, int]],
    *,
    notifications: int,
    messages: int,
) -> None:
    """Each rule's `r:<kind>:<id>` into `t`: of the notifications received (A+F) when it
    concerns some, of the messages otherwise; a failing rule's notifications are some of F."""
    received = {"A": 1.0, "F": 1.0}
    for (kind, rule_id), (value, total) in rules.items():
        num, _den = rule_share_parts(value, total, notifications, messages)
        rv = f"r:{kind}:{rule_id}"
        t.values[rv] = num
        if value > 0 or total == 0:
            den: dict[str, float] = dict(received)
            if value > 0:
                t.relate({rv: 1.0}, 1, None)  # the page says "av notifikasjoner"
            if kind == "rule_error":  # a failing rule's notifications are some of F
                t.relate({rv: 1.0, "F": -1.0}, None, 0)
        else:
            den = {"M": 1.0}
        t.relate({rv: 1.0, **{v: -c for v, c in den.items()}}, None, 0)
        t.shares[rv] = Share(rv, {rv: 1.0}, den)


# --- a municipality's two parts from its aggregates (feedback_kommune, feedback_count) -----


class Head(Protocol):
    @property
    def messages(self) -> int: ...
    @property
    def accepted(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def readable(self) -> int: ...


MESSAGE_KINDS = ("month", "item", "rule_error", "rule_warn")


def messages_part(
    kommune_nr: str,
    head: Head | None,
    counts: dict[tuple[str, str], tuple[int, int]],
) -> tuple[Table, Publication]:
    """The messages part of a municipality's figures and what of it is published: the same
    decision for its page and its row of the overview (`app.feedback.disclosure`)."""
    messages = head.messages if head else 0
    accepted = head.accepted if head else 0
    failed = head.failed if head else 0
    readable = bool(head and head.readable > 0)
    months = {key: v for (kind, key), (v, _t) in counts.items() if kind == "month"}
    items = {
        key: counts.get(("item", key), (0, 0))
        for key in ITEMS
        if key not in DISTRICT_ITEMS or has_districts(kommune_nr)
    }
    rules = {
        (kind, key): vt for (kind, key), vt in counts.items() if kind in ("rule_error", "rule_warn")
    }

    key = (
        "messages",
        messages,
        accepted,
        failed,
        readable,
        tuple(sorted(months.items())),
        tuple(sorted(items.items())),
        tuple(sorted(rules.items())),
    )
    return decide(
        key, lambda: messages_table(messages, accepted, failed, readable, months, items, rules)
    )


def users_part(counts: dict[tuple[str, str], tuple[int, int]]) -> tuple[Table, Publication]:
    users = counts.get(("users", "total"), (0, 0))[0]
    groups = {g: counts.get(("users", g), (0, 0))[0] for g in USER_GROUPS}
    by_type = {key: v for (kind, key), (v, _t) in counts.items() if kind == "tjeneste"}
    stopped = {code: counts.get(("tjeneste_stopp", code), (0, 0))[0] for code in by_type}
    key = (
        "users",
        users,
        tuple(sorted(groups.items())),
        tuple(sorted(by_type.items())),
        tuple(sorted(stopped.items())),
    )
    return decide(key, lambda: users_table(users, groups, by_type, stopped))


# --- decisions, remembered by their inputs (pure, so the same inputs decide the same) ----

_DECIDED: OrderedDict[tuple[object, ...], tuple[Table, Publication]] = OrderedDict()
_DECIDED_SIZE = 4096
_DECIDED_LOCK = threading.Lock()  # decisions are made in worker threads (asyncio.to_thread)


def decide(key: tuple[object, ...], build: Callable[[], Table]) -> tuple[Table, Publication]:
    """`build()` and its protected publication, remembered by `key` (the inputs `build`
    makes the table from): a municipality's page and its overview row, and the refresh's
    medians, share one decision, made once per process and content. CPU-bound (linear
    programs): the callers run it in a worker thread, never on the event loop."""
    with _DECIDED_LOCK:
        found = _DECIDED.get(key)
        if found is not None:
            _DECIDED.move_to_end(key)
            return found
    table = build()
    decided = (table, protect(table))
    with _DECIDED_LOCK:
        _DECIDED[key] = decided
        while len(_DECIDED) > _DECIDED_SIZE:
            _DECIDED.popitem(last=False)
    return decided
