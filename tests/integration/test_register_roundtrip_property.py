"""Issue 19's round trip as a property: for messages hypothesis draws (every event kind,
typeID 1/2/3/9, bydel, temporary stops, corrections, annulments, an event resent under a new
notification), every attribute of every accepted notification in the feed and in the Parquet
export equals the XML that was sent, on both databases."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.dev.devpki import DevPki
from app.platform.settings import Settings
from tests.budgets import examples
from tests.integration.register_roundtrip import from_feed, from_tables, sent
from tests.integration.test_intake_history import send
from tests.integration.test_register_export import cli_env, export  # noqa: F401 (a fixture)
from tests.integration.test_register_feed import Sessions, drain, loader  # noqa: F401
from tests.register_messages import EVENT_KINDS, Event, Notif, Person, melding_xml, person

_cases = itertools.count(1)


@pytest.fixture
def kpr(environments: httpx.AsyncClient) -> httpx.AsyncClient:
    return environments


@st.composite
def notifications(draw: st.DrawFn) -> list[Notif]:
    """A municipality's notifications with unique names per drawn case."""
    case = next(_cases)
    rng = random.Random(draw(st.integers(0, 2**32)))
    people: list[Person] = []
    for i in range(draw(st.integers(1, 3))):
        p = person(rng, f"P{case}-{i}", draw(st.sampled_from(["1", "2", "3", "9"])))
        if draw(st.booleans()):
            p = replace(p, bydel=draw(st.sampled_from(["030101", "0301", "460105"])))
        people.append(p)
    out: list[Notif] = []
    for lopenr in range(1, draw(st.integers(1, 5)) + 1):
        who = draw(st.sampled_from(people))
        kinds = draw(st.lists(st.sampled_from(EVENT_KINDS), min_size=1, max_size=3, unique=True))
        tjeneste = f"T{case}-{draw(st.integers(0, 1))}"
        day = f"2018-0{draw(st.integers(1, 9))}-1{draw(st.integers(0, 9))}"
        stopp = f"S{case}-{draw(st.integers(0, 1))}"
        events = tuple(
            Event(k, tjeneste, day, stopp_id=stopp if k.startswith("Midlertidig") else None)
            for k in kinds
        )
        out.append(Notif(lopenr, who, events))
    originals = [n for n in out if n.status == "N"]
    extra = draw(st.sampled_from(["none", "correction", "annulment", "resent-event"]))
    first = originals[0]
    if extra == "correction":
        moved = tuple(replace(e, dato="2018-10-01") for e in first.events)
        out.append(Notif(len(out) + 1, first.person, moved, status="M", ref=first.guid))
    elif extra == "annulment":
        out.append(Notif(len(out) + 1, first.person, first.events, status="C", ref=first.guid))
    elif extra == "resent-event":
        out.append(Notif(len(out) + 1, first.person, first.events))
    return out


@settings(
    max_examples=examples(12, floor=2),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=notifications(), split=st.booleans())
async def test_the_feed_and_the_export_hold_what_was_sent(
    kpr: httpx.AsyncClient,
    pki: DevPki,
    sessions: Sessions,
    loader: dict[str, str],  # noqa: F811
    cli_env: Settings,  # noqa: F811
    tmp_path: Path,
    drawn: list[Notif],
    split: bool,
) -> None:
    parts = [drawn[: len(drawn) // 2], drawn[len(drawn) // 2 :]] if split else [drawn]
    expected: dict[str, Any] = {}
    for part in (p for p in parts if p):
        content = melding_xml(part)
        answer = await send(kpr, pki, sessions, content)
        assert answer.status == "1", answer.ots  # warnings only: every row is kept
        expected |= sent(content)
    items, _ = await drain(kpr, loader)
    mine = [i for i in items if i["notifikasjon_guid"] in expected]
    assert from_feed(mine) == expected

    out = tmp_path / f"export-{next(_cases)}"
    await export(out, "--format", "parquet", "--with-fid")
    tables = {
        name: pq.read_table(out / f"{name}.parquet").to_pylist()
        for name in ("melding", "notifikasjon", "hendelse")
    }
    exported = from_tables(
        tables["melding"], tables["notifikasjon"], tables["hendelse"], with_fid=True
    )
    assert {g: exported[g] for g in expected} == expected
