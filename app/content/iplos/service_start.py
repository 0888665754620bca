"""A service type code is judged at the service's start (issue 21, item 4).

The Annotations' `validationDate` for `tjenesteType` is `./@tjenesteStartDato`, an attribute
56.0.0 no longer has: the TjenesteStart's `hendelseDato` for the same service carries it. A
service begun under a code since retired can therefore still be paused, handed to another
provider and ended. An event other than TjenesteStart whose retired code is not valid at its
own date is judged here, after every row is read, against the start found (in this order):
a TjenesteStart for the same (brukerNr, tjenesteID) in this message, then the register store
(`IplosHistory.service_starts`). When no start is known the event is accepted with a warning
(IPL-TJENESTETYPE-START-UNKNOWN): KPR cannot tell, and the Annotations' handling is 9.

A service is named by (brukerNr, tjenesteID) within the municipality, as the register's
episodes name it (app/register/episodes.py).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

_CODE = re.compile(r"[0-9]{1,2}")
START = "TjenesteStart"

# kodeverk 9151 codes that are retired (also in app/content/iplos/codes.py, which owns them)
_RETIRED = frozenset(["6", "14", "23", "24", "26", "27", "28"])


def code_of(value: str) -> str:
    """A 9151 code as a number ("06" is code 6)."""
    value = value.strip()
    return str(int(value)) if _CODE.fullmatch(value) else value


def needs_start(kind: str, tjeneste_type: str) -> bool:
    """Whether an event's code is judged at the service's start rather than at its own date:
    any event but TjenesteStart with a retired code."""
    return kind != START and code_of(tjeneste_type) in _RETIRED


class _Event(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def tjeneste_id(self) -> str: ...
    @property
    def when(self) -> datetime.date | None: ...


class _Row(Protocol):
    @property
    def bruker_nr(self) -> str: ...
    @property
    def dropped(self) -> bool: ...
    @property
    def events(self) -> Sequence[_Event]: ...


def starts_in(rows: Iterable[_Row]) -> dict[tuple[str, str], datetime.date]:
    """(brukerNr, tjenesteID) -> the earliest TjenesteStart date among the message's rows
    that are kept (a dropped row's date is not what KPR holds)."""
    found: dict[tuple[str, str], datetime.date] = {}
    for row in rows:
        if row.dropped:
            continue
        for ev in row.events:
            if ev.kind != START or ev.when is None or not ev.tjeneste_id:
                continue
            key = (row.bruker_nr, ev.tjeneste_id)
            if key not in found or ev.when < found[key]:
                found[key] = ev.when
    return found


def start_of(
    unit: str,
    bruker_nr: str,
    tjeneste_id: str,
    in_message: Mapping[tuple[str, str], datetime.date],
    stored: Mapping[tuple[str, str, str], datetime.date],
) -> datetime.date | None:
    """The service's start: from this message first, then from the register store."""
    return in_message.get((bruker_nr, tjeneste_id)) or stored.get((unit, bruker_nr, tjeneste_id))
