"""bench/register_feed.py's seed on tiny inputs: its rows fit the register tables (no test here
measures or asserts on time)."""

from __future__ import annotations

import re

from app.register.export import TABLES
from bench.register_feed import (
    HENDELSE_COLUMNS,
    MELDING_COLUMNS,
    NOTIFIKASJON_COLUMNS,
    SIZES,
    cursors,
    melding_rows,
    notification_rows,
    plan,
    sealed,
)
from tests.protector import PROTECTOR

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_the_plan_holds_exactly_n_notifications_in_meldinger_of_every_size() -> None:
    p = plan(sum(SIZES) + 7)
    assert sum(p.sizes) == sum(SIZES) + 7
    assert p.sizes[: len(SIZES)] == list(SIZES)
    assert plan(1).sizes == [1]


def test_the_rows_name_every_column_of_their_tables() -> None:
    for name, cols in (
        ("melding", MELDING_COLUMNS),
        ("notifikasjon", NOTIFIKASJON_COLUMNS),
        ("hendelse", HENDELSE_COLUMNS),
    ):
        assert set(cols) == set(TABLES[name].c.keys()), name
    p = plan(40)
    meldinger = list(melding_rows(p))
    assert [len(r) for r in meldinger] == [len(MELDING_COLUMNS)] * p.meldinger
    rows = list(notification_rows(p))
    assert [n[0] for n, _ in rows] == list(range(1, 41))
    events = [e for _, es in rows for e in es]
    assert len(events) == 40 + 10  # a second event on every fourth notification
    assert all(len(n) == len(NOTIFIKASJON_COLUMNS) for n, _ in rows)
    cache: dict[int, tuple[str, str]] = {}
    done = [dict(zip(HENDELSE_COLUMNS, sealed(PROTECTOR, e, cache), strict=True)) for e in events]
    assert all(GUID.match(e["hendelse_guid"]) for e in done)
    assert len({e["hendelse_guid"] for e in done}) == len(done)
    assert all(PROTECTOR.open(e["fid"]).isdigit() for e in done)
    assert all(e["fid_hmac"] == PROTECTOR.digest(PROTECTOR.open(e["fid"])) for e in done)


def test_cursors_name_a_notification_of_their_melding() -> None:
    p = plan(5000)
    starts = [sum(p.sizes[:m]) for m in range(p.meldinger)]
    for seq, nid in cursors(p, 30):
        assert starts[seq - 1] < nid <= starts[seq - 1] + p.sizes[seq - 1]
