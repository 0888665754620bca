"""Which municipality numbers a reporting year has, and what became of a number that is not in
it (SSB's change lists, `data/changes-FROM-TO.json`). Pure: the shipped lists, plus the lists
an operator imported, which the caller reads and passes in (`KommuneYears.imported`)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from app.kommuner.lists import shipped_list

_PACKAGE = "app.kommuner.data"


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """`old` became `new` on `valid_from` (renumbered: the same municipality; split: one of
    the parts)."""

    old: str
    old_name: str
    new: str
    new_name: str
    kind: str  # renumbered | split | merged
    valid_from: datetime.date


@cache
def shipped_changes() -> tuple[Change, ...]:
    """Every change of the shipped change lists, oldest list first."""
    out: list[Change] = []
    names = sorted(
        p.name
        for p in resources.files(_PACKAGE).iterdir()
        if p.name.startswith("changes-") and p.name.endswith(".json")
    )
    for name in names:
        data = json.loads(resources.files(_PACKAGE).joinpath(name).read_text("utf-8"))
        valid_from = datetime.date.fromisoformat(data["valid_from"])
        out.extend(
            Change(old=o, old_name=on, new=n, new_name=nn, kind=k, valid_from=valid_from)
            for o, on, n, nn, k in data["changes"]
        )
    return tuple(out)


def changes_from(kommune_nr: str) -> tuple[Change, ...]:
    """What became of `kommune_nr` (several rows when it was split)."""
    return tuple(c for c in shipped_changes() if c.old == kommune_nr)


def changes_to(kommune_nr: str) -> tuple[Change, ...]:
    """Where `kommune_nr` came from."""
    return tuple(c for c in shipped_changes() if c.new == kommune_nr)


def renumbered_alike(numbers: Iterable[str]) -> frozenset[str]:
    """`numbers` with the numbers the same municipalities had or got in a one-to-one
    renumbering (Halden 3001 <-> 3101): a party registered under one may report under the
    other. A split makes other municipalities, so it adds nothing."""
    out = set(numbers)
    pending = list(out)
    while pending:
        nr = pending.pop()
        for c in shipped_changes():
            if c.kind != "renumbered":
                continue
            other = c.new if c.old == nr else c.old if c.new == nr else None
            if other is not None and other not in out:
                out.add(other)
                pending.append(other)
    return frozenset(out)


@cache
def _shipped_numbers(year: int) -> frozenset[str]:
    return frozenset(k.kommune_nr for k in shipped_list(year))


@dataclass(frozen=True, slots=True)
class KommuneYears:
    """The municipality numbers of each reporting year: an imported list of that year, else
    the shipped one in force that year (as `kommuner_of` reads them)."""

    imported: Mapping[int, frozenset[str]] = field(default_factory=dict)

    def numbers(self, year: int) -> frozenset[str]:
        return self.imported.get(year) or _shipped_numbers(year)
