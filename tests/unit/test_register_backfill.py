"""The pure part of `register backfill`: which notifications are stored again, and the rules
their findings had when the intake stored them."""

from __future__ import annotations

from app.content.model import ContentResult, Notification, RawNotification
from app.intake.backfill import accepted_content, rules_by_row


def test_rules_come_from_the_findings_located_in_each_row_in_stored_order() -> None:
    stored = [
        ("IPL-LOPENR-GAP", "/Melding/Notifikasjon/@notifikasjonLopeNr"),  # the message's
        ("IPL-B", "/Melding/Notifikasjon[1]/TjenesteStart/Bruker/@brukerNr"),
        ("IPL-A", "/Melding/Notifikasjon[1]/@notifikasjonRef"),
        ("IPL-B", "/Melding/Notifikasjon[1]"),
        ("IPL-C", "/Melding/Notifikasjon[10]/@notifikasjonGUID"),
        ("EBMS-X", "eb:MessageHeader"),
    ]
    assert rules_by_row(stored) == {1: ("IPL-B", "IPL-A"), 10: ("IPL-C",)}


def _row(index: int, guid: str, *, dropped: bool = False, stored: bool = False) -> Notification:
    return Notification(
        index=index,
        guid=guid,
        status="N",
        lopenr=index,
        forrige_guid="",
        ref=None,
        events=(),
        kommune_nr="0301",
        bruker_nr="B",
        fid="",
        type_id="1",
        bydel=None,
        dropped=dropped,
        already_stored=stored,
        raw=RawNotification.of({"notifikasjonGUID": guid}, ()),
        rules=("TODAY",),
    )


def test_exactly_the_accepted_notifications_are_kept_with_their_rules_of_then() -> None:
    content = ContentResult(
        findings=(),
        notifications=(
            _row(1, "a"),
            _row(2, "b", stored=True),  # judged today against an empty history
            _row(3, "c", dropped=True),  # dropped today, accepted then
            _row(4, "a", dropped=True),  # a GUID's second row is never the accepted one
            _row(5, "d"),  # an identical resend then: not in the history of this message
        ),
        contacts=(),
        kommuner=("0301",),
    )
    kept, missing = accepted_content(content, ["a", "b", "c", "e"], {1: ("THEN",)})
    assert [(n.index, n.rules, n.dropped, n.already_stored) for n in kept.notifications] == [
        (1, ("THEN",), False, False),
        (2, (), False, False),
        (3, (), False, False),
    ]
    assert missing == {"e"}
