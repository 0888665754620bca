"""The feedback's figures assembled from hand-made aggregates, without a database: the overview
and a municipality's page (`build_overview`, `build_kommune`), the suppression they apply and
the timeliness they judge."""

from __future__ import annotations

import dataclasses
import datetime

from app.content.calendar import DeadlineExtension, ReportingYear
from app.feedback import suppress
from app.feedback.assembly import KommuneInput, OverviewInput, build_kommune, build_overview
from app.feedback.figures import Environment, Timeliness
from app.feedback.repository import Counts, Head
from app.kommuner.ssb import Kommune

UTC = datetime.UTC
ENTRY = ReportingYear(
    year=2025,
    pilot_from=None,
    pilot_to=None,
    deadline=datetime.date(2026, 1, 31),
    correction_deadline=datetime.date(2026, 4, 30),
)
BEFORE_DEADLINE = datetime.datetime(2026, 1, 20, 12, tzinfo=UTC)
AFTER_DEADLINE = datetime.datetime(2026, 2, 10, 12, tzinfo=UTC)

# a large municipality that delivered on time, a small one that delivered late, and one
# that sent nothing
KOMMUNER = [
    Kommune(kommune_nr="1804", name="Bodø"),
    Kommune(kommune_nr="4601", name="Bergen"),
    Kommune(kommune_nr="5001", name="Trondheim"),
]


def _head(
    kommune_nr: str, *, messages: int, accepted: int, failed: int, first: datetime.datetime
) -> Head:
    return Head(
        kommune_nr=kommune_nr,
        messages=messages,
        readable=messages,
        first_readable_at=first,
        last_readable_at=first,
        accepted=accepted,
        failed=failed,
        top_rule="IPL-XSD-ROW",
    )


BIG = _head(
    "4601",
    messages=40,
    accepted=1000,
    failed=100,
    first=datetime.datetime(2026, 1, 10, 9, tzinfo=UTC),
)
SMALL = _head(
    "1804",
    messages=3,
    accepted=3,
    failed=0,
    first=datetime.datetime(2026, 2, 5, 9, tzinfo=UTC),
)
BIG_COUNTS: Counts = {
    ("month", "2025-11"): (20, 0),
    ("month", "2025-12"): (20, 0),
    ("rule_error", "IPL-XSD-ROW"): (100, 0),
    ("rule_warn", "MSGHEAD-GENDATE-FUTURE"): (0, 10),
    ("item", "lopenr"): (900, 1000),
}


def _overview(
    *,
    now: datetime.datetime = AFTER_DEADLINE,
    granted: tuple[DeadlineExtension, ...] = (),
    environment: Environment = Environment.PRODUCTION,
) -> OverviewInput:
    return OverviewInput(
        year=2025,
        environment=environment,
        entry=ENTRY,
        now=now,
        gen="7.1000",
        granted=granted,
        kommuner=KOMMUNER,
        heads={"4601": BIG, "1804": SMALL, "9999": BIG},  # 9999: not in the year's list
        counts={"4601": BIG_COUNTS, "1804": {("month", "2026-02"): (3, 0)}},
        refreshed_at=datetime.datetime(2026, 2, 10, 3, tzinfo=UTC),
        pilot_delivered=2,
    )


def test_the_overview_lists_every_municipality_of_the_year_with_its_timeliness() -> None:
    o = build_overview(_overview())
    rows = {r.kommune_nr: r for r in o.kommuner}
    assert list(rows) == ["1804", "4601", "5001"]
    assert rows["4601"].timeliness is Timeliness.ON_TIME
    assert rows["1804"].timeliness is Timeliness.LATE
    assert rows["5001"].timeliness is Timeliness.MISSING
    assert rows["5001"].timeliness_text == "Ikke levert"
    assert not rows["5001"].readable
    assert rows["4601"].first_readable == datetime.date(2026, 1, 10)
    assert rows["4601"].top_rule == "IPL-XSD-ROW"
    assert rows["5001"].top_rule is None
    assert o.pilot_delivered == 2
    assert o.generation == "7.1000"
    assert o.deadline == ENTRY.deadline


def test_before_the_deadline_a_municipality_without_a_message_is_pending() -> None:
    o = build_overview(_overview(now=BEFORE_DEADLINE))
    rows = {r.kommune_nr: r for r in o.kommuner}
    assert rows["5001"].timeliness is Timeliness.PENDING


def test_a_granted_extension_makes_a_late_delivery_on_time() -> None:
    granted = (DeadlineExtension("1804", 2025, datetime.date(2026, 2, 15)),)
    rows = {r.kommune_nr: r for r in build_overview(_overview(granted=granted)).kommuner}
    assert rows["1804"].timeliness is Timeliness.ON_TIME
    assert rows["4601"].timeliness is Timeliness.ON_TIME


def test_the_overview_suppresses_small_counts_and_sums_only_published_cells() -> None:
    o = build_overview(_overview())
    rows = {r.kommune_nr: r for r in o.kommuner}
    assert rows["4601"].messages.value == 40
    assert rows["4601"].accepted.value == 1000
    assert rows["1804"].messages.value is None
    assert rows["1804"].messages.text == suppress.SMALL
    assert rows["5001"].messages.value == 0  # nothing received: 0 is not suppressed
    assert rows["5001"].messages.text == "0"
    assert rows["5001"].error_share.text == suppress.NONE
    # the headline: only Bergen's published cells (9999 is not in the list)
    assert o.headline.kommuner == 3
    assert o.headline.delivered == 2
    assert o.headline.on_time == 1
    assert o.headline.late == 1
    assert o.headline.messages.value == 40
    assert o.headline.accepted.value == 1000
    assert o.headline.error_share.value == rows["4601"].error_share.value
    assert o.fylker == sorted({(r.fylke, r.fylke_name) for r in o.kommuner})


def _kommune(head: Head | None, counts: Counts, now: datetime.datetime) -> KommuneInput:
    medians = {
        ("headline", "messages"): (30.0, 7),
        ("headline", "error_share"): (8.04, 4),  # fewer than 5 municipalities: not shown
        ("month", "2025-11"): (12.0, 6),
    }
    return KommuneInput(
        kommune_nr="4601",
        name="Bergen",
        year=2025,
        environment=Environment.PILOT,
        entry=ENTRY,
        now=now,
        gen="7.1000",
        head=head,
        counts=counts,
        medians=medians,
        refreshed_at=None,
    )


def test_a_municipality_page_shows_its_figures_rules_and_months() -> None:
    page = build_kommune(_kommune(BIG, BIG_COUNTS, AFTER_DEADLINE))
    assert page.readable
    assert page.timeliness is Timeliness.ON_TIME
    assert page.messages.value == 40
    assert page.messages_median.value == 30.0
    assert page.messages_median.text == "30,0"
    assert page.error_share_median.value is None
    assert page.error_share_median.kommuner == 4
    assert page.users_on == datetime.date(2025, 12, 31)
    assert [m.month for m in page.months] == ["2025-11", "2025-12"]
    assert page.months[0].messages.value == 20
    assert page.months[0].median.value == 12.0
    # errors before warnings; a rule about notifications counts them, one about whole
    # messages counts messages
    assert [(r.rule_id, r.severity, r.basis) for r in page.rules] == [
        ("IPL-XSD-ROW", "feil", "notifikasjoner"),
        ("MSGHEAD-GENDATE-FUTURE", "advarsel", "meldinger"),
    ]
    assert page.rules[0].consequence == "Notifikasjonen ikke tatt imot"
    assert "EPJ" in page.rules[0].text
    assert [g.key for g in page.user_groups] == ["long_term", "home", "other"]


def test_the_district_item_is_shown_only_where_districts_are_used() -> None:
    page = build_kommune(_kommune(BIG, BIG_COUNTS, AFTER_DEADLINE))
    keys = [i.key for i in page.items]
    assert "lopenr" in keys
    assert "bydel" in keys  # Bergen has districts
    other = build_kommune(
        dataclasses.replace(_kommune(BIG, BIG_COUNTS, AFTER_DEADLINE), kommune_nr="1804")
    )
    assert "bydel" not in [i.key for i in other.items]


def test_a_municipality_without_figures_is_pending_then_missing() -> None:
    pending = build_kommune(_kommune(None, {}, BEFORE_DEADLINE))
    assert not pending.readable
    assert pending.timeliness is Timeliness.PENDING
    assert pending.rules == []
    assert pending.months == []
    missing = build_kommune(_kommune(None, {}, AFTER_DEADLINE))
    assert missing.timeliness is Timeliness.MISSING
    assert missing.timeliness_text == "Ikke levert"


def test_the_medians_take_only_delivered_municipalities_and_published_figures() -> None:
    from app.feedback.refresh import _medians
    from app.feedback.repository import CountRow

    heads = [
        dataclasses.replace(BIG, kommune_nr=k, messages=40 + i, readable=40 + i)
        for i, k in enumerate(["0301", "1103", "4601", "5001", "3301"])
    ]
    heads.append(dataclasses.replace(SMALL, kommune_nr="3401", readable=0))  # nothing readable
    heads.append(SMALL)  # "<5" messages: its count is left out, not taken as 0
    counts = [  # Bergen's 42 messages by month
        CountRow(kommune_nr="4601", kind="month", key="2025-11", value=20, total=0),
        CountRow(kommune_nr="4601", kind="month", key="2025-12", value=22, total=0),
        CountRow(kommune_nr="3401", kind="month", key="2025-11", value=900, total=0),
    ]
    found = _medians(heads, counts)
    assert found[("headline", "messages")] == (42.0, 5)
    # a month a page does not list counts as 0; the undelivered municipality's is left out
    assert found[("month", "2025-11")] == (0.0, 6)
    assert found[("month", "2025-12")] == (0.0, 6)
