"""What a register test sent, read back attribute by attribute from the XML itself, and the
same shape built from what the feed or an export hands out, so the two compare whole."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from lxml import etree

from app.register.store import (
    BRUKER_ATTRIBUTES,
    HENDELSE_ATTRIBUTES,
    MELDING_ATTRIBUTES,
    NOTIFIKASJON_ATTRIBUTES,
)
from tests.register_messages import NS, Event, Notif, Person, person

Shape = dict[str, Any]  # notifikasjonGUID -> {"melding", "notifikasjon", "hendelser"}


def varied(rng: random.Random, prefix: str = "R") -> list[Notif]:
    """Every event kind, typeID 1/2/3/9, bydel, a temporary stop paired by its id, an event
    date with a time zone, two events in one notification, and a correction."""
    p1 = Person(**{**person(rng, f"{prefix}-1", "1").__dict__, "bydel": "030102"})
    p2 = person(rng, f"{prefix}-2", "2")
    p3 = person(rng, f"{prefix}-3", "3")
    p9 = Person(**{**person(rng, f"{prefix}-9", "9").__dict__, "bydel": "030105"})
    t1 = f"{prefix}T1"
    start = Notif(1, p1, (Event("TjenesteStart", t1, "2018-01-10"),))
    return [
        start,
        Notif(2, p2, (Event("TjenesteStart", f"{prefix}T2", "2018-02-01", tjeneste_type="18"),)),
        Notif(
            3,
            p1,
            (
                Event("MidlertidigStoppFra", t1, "2018-03-01", stopp_id=f"{prefix}-S1"),
                Event("TjenesteutforerEndret", t1, "2018-03-02"),
            ),
        ),
        Notif(
            4, p1, (Event("MidlertidigStoppTil", t1, "2018-03-20+01:00", stopp_id=f"{prefix}-S1"),)
        ),
        Notif(5, p3, (Event("TjenesteSlutt", f"{prefix}T3", "2018-04-01"),)),
        Notif(6, p9, (Event("TjenesteStart", f"{prefix}T9", "2018-05-01"),)),
        Notif(7, p1, (Event("TjenesteStart", t1, "2018-01-11"),), status="M", ref=start.guid),
    ]


def fids_of(notifications: Iterable[Notif]) -> set[str]:
    """The fødselsnumre, D- and H-numbers sent (typeID 9's six-digit birth date is left out:
    six digits occur in any file by chance)."""
    return {n.person.fid for n in notifications if n.person.type_id != "9"}


def sent(content: bytes, *, with_fid: bool = True) -> Shape:
    """Every attribute the XML gives each notification, under the register's column names."""
    root = etree.fromstring(content)
    melding = {col: root.get(attr) for col, attr in MELDING_ATTRIBUTES.items()}
    out: Shape = {}
    for el in root.findall(f"{{{NS}}}Notifikasjon"):
        hendelser = []
        for event in el:
            bruker = event.find(f"{{{NS}}}Bruker")
            assert bruker is not None
            row: dict[str, str | None] = {"hendelse_type": etree.QName(event).localname}
            row |= {col: event.get(attr) for col, attr in HENDELSE_ATTRIBUTES.items()}
            row |= {col: bruker.get(attr) for col, attr in BRUKER_ATTRIBUTES.items()}
            if not with_fid:
                row.pop("fid")
            hendelser.append(row)
        guid = el.get("notifikasjonGUID")
        assert guid is not None
        out[guid] = {
            "melding": melding,
            "notifikasjon": {col: el.get(attr) for col, attr in NOTIFIKASJON_ATTRIBUTES.items()},
            "hendelser": hendelser,
        }
    return out


def _hendelse_columns(with_fid: bool) -> list[str]:
    cols = ["hendelse_type", *HENDELSE_ATTRIBUTES, *BRUKER_ATTRIBUTES]
    return cols if with_fid else [c for c in cols if c != "fid"]


def from_feed(items: Iterable[Mapping[str, Any]]) -> Shape:
    """The feed's items in the same shape (fid opened by the service)."""
    return {
        item["notifikasjon_guid"]: {
            "melding": {col: item["melding"][col] for col in MELDING_ATTRIBUTES},
            "notifikasjon": {col: item[col] for col in NOTIFIKASJON_ATTRIBUTES},
            "hendelser": [
                {col: h[col] for col in _hendelse_columns(True)} for h in item["hendelser"]
            ],
        }
        for item in items
    }


def from_tables(
    meldinger: Iterable[Mapping[str, Any]],
    notifikasjoner: Iterable[Mapping[str, Any]],
    hendelser: Iterable[Mapping[str, Any]],
    *,
    with_fid: bool,
    empty: Any = None,
) -> Shape:
    """An export's rows in the same shape; `empty` is how the file writes a value not sent
    (CSV: "")."""

    def value(row: Mapping[str, Any], col: str) -> Any:
        v = row[col]
        return None if v == empty else v

    by_melding = {value(m, "id"): m for m in meldinger}
    events: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)
    for h in hendelser:
        events[value(h, "notifikasjon_id")].append(h)
    out: Shape = {}
    for n in notifikasjoner:
        m = by_melding[value(n, "melding_id")]
        own = sorted(events[value(n, "id")], key=lambda h: int(h["position"]))
        out[n["notifikasjon_guid"]] = {
            "melding": {col: value(m, col) for col in MELDING_ATTRIBUTES},
            "notifikasjon": {col: value(n, col) for col in NOTIFIKASJON_ATTRIBUTES},
            "hendelser": [{col: value(h, col) for col in _hendelse_columns(with_fid)} for h in own],
        }
    return out
