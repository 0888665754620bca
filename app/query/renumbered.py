"""Coverage under the year's municipality numbers: what a municipality sent under the number
it had (or got) in a one-to-one renumbering counts for its number in the year's list (Halden
sending as 3001 in 2024 has delivered as 3101). Pure."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from app.kommuner.years import renumbered_alike
from app.query.coverage import Delivery, Received
from app.query.totals import RANK, STATUS_OF_RANK


def _year_number(kommune_nr: str, listed: Collection[str]) -> str:
    if kommune_nr in listed:
        return kommune_nr
    alike = sorted(k for k in renumbered_alike([kommune_nr]) if k in listed)
    return alike[0] if alike else kommune_nr


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(a, b) if a and b else a or b


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(a, b) if a and b else a or b


def _merged(a: Delivery, b: Delivery, kommune_nr: str) -> Delivery:
    ranks = [RANK[s] for s in (a.best_apprec_status, b.best_apprec_status) if s in RANK]
    return Delivery(
        kommune_nr=kommune_nr,
        messages=a.messages + b.messages,
        readable=a.readable + b.readable,
        first_readable_at=_earliest(a.first_readable_at, b.first_readable_at),
        last_readable_at=_latest(a.last_readable_at, b.last_readable_at),
        best_apprec_status=STATUS_OF_RANK[min(ranks)] if ranks else None,
    )


def fold_renumbered(received: Received, listed: Collection[str]) -> Received:
    """`received` with every municipality under its number in `listed` (the year's list)."""
    deliveries: dict[str, Delivery] = {}
    for k, d in received.deliveries.items():
        to = _year_number(k, listed)
        before = deliveries.get(to)
        deliveries[to] = _merged(before, d, to) if before else _merged(d, _NONE, to)
    accepted: dict[str, int] = {}
    for k, n in received.accepted.items():
        to = _year_number(k, listed)
        accepted[to] = accepted.get(to, 0) + n
    errors: dict[str, int] = {}
    for k, n in received.open_errors.items():
        to = _year_number(k, listed)
        errors[to] = errors.get(to, 0) + n
    return Received(deliveries=deliveries, accepted=accepted, open_errors=errors)


_NONE = Delivery(
    kommune_nr="",
    messages=0,
    readable=0,
    first_readable_at=None,
    last_readable_at=None,
    best_apprec_status=None,
)
