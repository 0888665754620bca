"""Episodes as a function of the stored notifications (app/register/episodes.py): which
notifications are in force, and one key's episode. The order the facts come in never
matters."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from app.register.episodes import EventFacts, NotificationFacts, episode_of, in_force


def notif(
    guid: str, status: str = "N", ref: str | None = None, lopenr: int = 1
) -> NotificationFacts:
    return NotificationFacts(guid=guid, status=status, ref=ref, lopenr=lopenr, tid="")


def event(
    n: NotificationFacts,
    kind: str,
    day: int,
    *,
    hendelse_guid: str | None = None,
    stopp: str | None = None,
    org: str | None = None,
) -> EventFacts:
    return EventFacts(
        notification=n,
        kind=kind,
        position=1,
        tjeneste_type="20",
        tjeneste_org_nr=org,
        hendelse_dato=dt.date(2018, 1, day),
        hendelse_guid=hendelse_guid or f"{n.guid}-{kind}",
        midlertidig_stopp_id=stopp,
        fid_hmac="h",
    )


N1, N2 = notif("n1", lopenr=1), notif("n2", lopenr=2)
M1 = notif("m1", "M", "n1", lopenr=3)
M1_LATER = notif("m1b", "M", "n1", lopenr=5)
C1 = notif("c1", "C", "n1", lopenr=4)
ORPHAN = notif("m9", "M", "unknown", lopenr=6)


def test_a_correction_replaces_its_original_and_the_latest_correction_wins() -> None:
    everything = [N1, N2, M1, M1_LATER, ORPHAN]
    assert in_force(everything, everything) == {"n2", "m1b", "m9"}


def test_an_annulment_removes_the_original_and_its_corrections() -> None:
    everything = [N1, M1, C1, N2]
    assert in_force(everything, everything) == {"n2"}


@given(st.permutations([N1, N2, M1, M1_LATER, C1, ORPHAN]))
def test_what_is_in_force_does_not_depend_on_order(order: list[NotificationFacts]) -> None:
    assert in_force(order, list(reversed(order))) == {"n2", "m9"}


def test_an_episode_pairs_stops_by_their_id_and_counts_a_resent_event_once() -> None:
    again = notif("n3", lopenr=7)
    events = [
        event(N1, "TjenesteStart", 10, hendelse_guid="e1", org="111"),
        event(again, "TjenesteStart", 10, hendelse_guid="e1", org="111"),
        event(N2, "MidlertidigStoppFra", 12, stopp="s1"),
        event(notif("n4"), "MidlertidigStoppTil", 15, stopp="s1"),
        event(notif("n5"), "MidlertidigStoppFra", 20, stopp="s2"),
        event(notif("n6"), "TjenesteutforerEndret", 21, org="222"),
        event(notif("n7"), "TjenesteSlutt", 30),
    ]
    force = {e.notification.guid for e in events}
    episode = episode_of(("B1", "T1"), events, force)
    assert episode is not None
    assert (episode.start_dato, episode.start_notifikasjon_guid) == (dt.date(2018, 1, 10), "n1")
    assert (episode.slutt_dato, episode.slutt_notifikasjon_guid) == (dt.date(2018, 1, 30), "n7")
    assert episode.tjeneste_org_nr == "222"
    assert [
        (s["midlertidig_stopp_id"], s["fra_dato"], s["til_dato"])
        for s in episode.midlertidige_stopp
    ] == [
        ("s1", "2018-01-12", "2018-01-15"),
        ("s2", "2018-01-20", None),
    ]
    assert [c["tjeneste_org_nr"] for c in episode.utforer_endringer] == ["222"]
    # the same facts in any order give the same episode
    assert episode_of(("B1", "T1"), list(reversed(events)), force) == episode


def test_nothing_in_force_is_no_episode() -> None:
    events = [event(N1, "TjenesteStart", 10)]
    assert episode_of(("B1", "T1"), events, set()) is None
