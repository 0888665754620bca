"""The lists the product ships (`data/kommuner-YEAR.json`, written by
`scripts/convert_kommuner.py` from SSB's exports): the fallback when the database has no list
for a year (`kpr-mottak kommuner import` loads a newer one)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from app.kommuner.ssb import Kommune

_PACKAGE = "app.kommuner.data"


@cache
def shipped_years() -> tuple[int, ...]:
    names = (p.name for p in resources.files(_PACKAGE).iterdir())
    return tuple(
        sorted(int(n[9:13]) for n in names if n.startswith("kommuner-") and n.endswith(".json"))
    )


@cache
def shipped_list(year: int) -> tuple[Kommune, ...]:
    """The shipped list that was in force in `year`: the newest one not after it (the
    oldest for earlier years)."""
    years = shipped_years()
    if not years:
        return ()
    chosen = max((y for y in years if y <= year), default=years[0])
    text = resources.files(_PACKAGE).joinpath(f"kommuner-{chosen}.json").read_text("utf-8")
    return tuple(Kommune(kommune_nr=k, name=n) for k, n in json.loads(text)["kommuner"])
