"""MsgHead checks that need context from outside the document: the clock, the supported
message types, the ebXML envelope and the party registry.

Mismatching HER-ids between the ebXML envelope, MsgHead and the registered party are treated
as spoofing (the message is rejected), never as a typo.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from app.core.findings import Finding
from app.msghead import rules
from app.msghead.model import MsgHead

DEFAULT_CLOCK_SKEW = timedelta(minutes=10)

_SENDER_LOC = "/MsgHead/MsgInfo/Sender/Organisation"
_RECEIVER_LOC = "/MsgHead/MsgInfo/Receiver/Organisation"


def _her(value: str | None) -> str:
    return value if value else "(mangler)"


def check_msghead(
    head: MsgHead,
    *,
    now: datetime,
    supported_types: Collection[str],
    ebxml_from_her_id: str | None,
    ebxml_to_her_id: str | None,
    party_her_id: str | None,
    our_her_ids: Collection[str],
    max_clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> tuple[Finding, ...]:
    """Context checks on a read MsgHead.

    `ebxml_from_her_id`/`ebxml_to_her_id` are the HER-ids of the ebXML From/To PartyIds,
    `party_her_id` the registered party whose certificate signed the message. Pass None for
    one that does not apply (e.g. `kpr-mottak validate FILE` has no envelope); then that check
    is skipped. MsgId uniqueness per sender is the caller's check against the database
    (rule `MSGHEAD-MSGID-DUPLICATE`).
    """
    if now.tzinfo is None:
        raise ValueError("check_msghead needs an aware `now`")
    return (
        *_gen_date_future(head, now=now, max_clock_skew=max_clock_skew),
        *_type_unsupported(head, supported_types),
        *_sender_mismatch(head, ebxml_from_her_id=ebxml_from_her_id, party_her_id=party_her_id),
        *_receiver_mismatch(head, ebxml_to_her_id=ebxml_to_her_id, our_her_ids=our_her_ids),
    )


def _gen_date_future(
    head: MsgHead, *, now: datetime, max_clock_skew: timedelta
) -> tuple[Finding, ...]:
    if head.gen_date is None or head.gen_date - now <= max_clock_skew:
        return ()
    return (
        Finding(
            rule=rules.GENDATE_FUTURE,
            location="/MsgHead/MsgInfo/GenDate",
            detail=(
                f"MsgInfo/GenDate {head.gen_date_raw} ligger mer enn "
                f"{int(max_clock_skew.total_seconds() // 60)} minutter fram i tid i forhold "
                f"til mottakstidspunktet. Meldingen er tatt imot. Kontroller klokken og "
                f"tidssonen i fagsystemet (EPJ): norsk tid skal ikke merkes med Z (UTC)."
            ),
        ),
    )


def _type_unsupported(head: MsgHead, supported_types: Collection[str]) -> tuple[Finding, ...]:
    type_v = head.type_v
    if type_v in supported_types:
        return ()
    supported = ", ".join(sorted(supported_types))
    return (
        Finding(
            rule=rules.TYPE_UNSUPPORTED,
            location="/MsgHead/MsgInfo/Type",
            detail=(
                f"MsgInfo/Type V='{(type_v or '(mangler)')[:60]}' støttes ikke av denne "
                f"mottakeren. Støttede meldingstyper: {supported}."
            ),
        ),
    )


def _sender_mismatch(
    head: MsgHead, *, ebxml_from_her_id: str | None, party_her_id: str | None
) -> tuple[Finding, ...]:
    """The MsgHead sender against the ebXML From and the party that signed (None: skipped)."""
    sender = head.sender_her_id
    findings: tuple[Finding, ...] = ()
    if ebxml_from_her_id is not None and sender != ebxml_from_her_id:
        findings += (
            Finding(
                rule=rules.SENDER_NOT_EBXML_FROM,
                location=_SENDER_LOC,
                detail=(
                    f"Avsenderens HER-id i meldingshodet er {_her(sender)}, men ebXML-"
                    f"konvolutten er sendt fra HER-id {ebxml_from_her_id}. De skal være like."
                ),
            ),
        )
    if party_her_id is not None and sender != party_her_id:
        findings += (
            Finding(
                rule=rules.SENDER_NOT_PARTY,
                location=_SENDER_LOC,
                detail=(
                    f"Avsenderens HER-id i meldingshodet er {_her(sender)}, men meldingen er "
                    f"sendt og signert av kommunikasjonsparten med HER-id {party_her_id}."
                ),
            ),
        )
    return findings


def _receiver_mismatch(
    head: MsgHead, *, ebxml_to_her_id: str | None, our_her_ids: Collection[str]
) -> tuple[Finding, ...]:
    """The MsgHead receiver against the ebXML To (None: skipped) and KPR's own addresses."""
    receiver = head.receiver_her_id
    findings: tuple[Finding, ...] = ()
    if ebxml_to_her_id is not None and receiver != ebxml_to_her_id:
        findings += (
            Finding(
                rule=rules.RECEIVER_NOT_EBXML_TO,
                location=_RECEIVER_LOC,
                detail=(
                    f"Mottakerens HER-id i meldingshodet er {_her(receiver)}, men ebXML-"
                    f"konvolutten er sendt til HER-id {ebxml_to_her_id}. De skal være like."
                ),
            ),
        )
    if receiver not in our_her_ids:
        findings += (
            Finding(
                rule=rules.RECEIVER_UNKNOWN,
                location=_RECEIVER_LOC,
                detail=(
                    f"Mottakerens HER-id i meldingshodet er {_her(receiver)}, som ikke er en "
                    "KPR-adresse hos denne mottakstjenesten. Bruk HER-id-en til KPR fra "
                    "Adresseregisteret."
                ),
            ),
        )
    return findings


def msgid_duplicate(head: MsgHead, *, first_received_at: datetime | None = None) -> Finding:
    """The finding for a MsgId this sender already used (the caller found it in the DB)."""
    when = (
        f" (første gang mottatt {first_received_at.isoformat(timespec='seconds')})"
        if first_received_at is not None
        else ""
    )
    return Finding(
        rule=rules.MSGID_DUPLICATE,
        location="/MsgHead/MsgInfo/MsgId",
        detail=(
            f"MsgId '{(head.msg_id or '')[:100]}' er allerede brukt av avsender HER-id "
            f"{_her(head.sender_her_id)} for en annen melding{when}. Send meldingen på nytt "
            "med en ny MsgId."
        ),
    )
