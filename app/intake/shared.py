"""What every intake path shares, whichever transport brought the message: the write
transaction's races, what the business layers tell about a message, the history it
establishes, the email to innsendingsansvarlig, and the small helpers around them. Used by
the ebXML service (`service.py`) and the transport-independent core (`core.py`)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.apprec.mapping import error_counts
from app.apprec.model import AppRecStatus
from app.content.calendar import ReportingCalendar, parse_reporting_calendar
from app.content.model import IplosHistory
from app.core.findings import Finding
from app.intake import history as history_repo
from app.intake import repository as repo
from app.intake import revocation, stages
from app.intake.business import Business
from app.intake.outcome import HistoryRecord, Mail, Outcome
from app.keyring import Keyring
from app.models import Message, Party
from app.notify.email import compose_notification, warning_counts
from app.platform.settings import Settings
from app.security.certificates import PartyTrust
from app.security.keys import load_certificate
from app.state import AppState
from app.statuses import CertificateUsage

# MsgHead and the transport say different senders or receivers: spoofing, not a typo
# (DOMAIN 2.3).
SPOOFING_RULES = frozenset(
    {"MSGHEAD-SENDER-NOT-EBXML-FROM", "MSGHEAD-SENDER-NOT-PARTY", "MSGHEAD-RECEIVER-NOT-EBXML-TO"}
)


# --- the write transaction's races ------------------------------------------------------------


class Conflict(Exception):
    """The write transaction lost a race to another message: check this one again."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


async def decide_claim(session: AsyncSession, out: Outcome) -> None:
    """Make the outcome's dedup claim (once: then it is spent) in a savepoint; `Conflict`
    when another message holds it."""
    claim, message_id = out.claim, out.message_id
    assert claim is not None
    assert message_id is not None
    try:
        async with session.begin_nested():
            await repo.claim_message_id(
                session,
                claim.key.from_party_id,
                claim.key.ebms_message_id,
                message_id,
                claim.content_sha256,
            )
    except IntegrityError:
        raise Conflict("claimed") from None
    out.claim = None


async def decide_races(session: AsyncSession, out: Outcome) -> None:
    """What the checks read and the write must still find true, decided by the database:
    the dedup claim's primary key (a copy of this message claimed first: it is then a
    duplicate) and the versions of the history the content was checked against (a message
    of the same municipality stored meanwhile). Either lost: roll back, `Conflict`."""
    if out.claim is not None and out.release_claim is None:
        try:
            await decide_claim(session, out)
        except Conflict:
            await session.rollback()
            raise
    read = out.history_read
    if read is not None and not await history_repo.confirm_versions(session, read):
        await session.rollback()
        raise Conflict("history_changed")


# --- what the business layers tell -------------------------------------------------------------


def record_business(
    out: Outcome, party: Party, business: Business, findings: Sequence[Finding]
) -> None:
    """What the business layers tell about the message, on its row and in the log."""
    head = business.msghead
    if head is not None:
        out.msghead_msg_id = (
            repo.fit(head.msg_id, repo.MSGHEAD_MSG_ID_WIDTH) if head.msg_id else None
        )
        out.msghead_type = head.type_v[:50] if head.type_v else None
    if business.content is not None:
        # Only a municipality the party may report for: findings (with person ids) are
        # filed under it and read by that municipality's users.
        kommune = kommune_nr(business.content.kommuner)
        allowed = {k.kommune_nr for k in party.kommuner}
        out.kommune_nr = kommune if kommune in allowed else None
        out.notification_count = len(business.content.notifications)
    spoofing = sorted({f.rule.id for f in findings} & SPOOFING_RULES)
    if spoofing:
        out.log("warning", "security.spoofing_suspected", party_her_id=party.her_id, rules=spoofing)


def keep_history(
    out: Outcome,
    *,
    environment: str,
    business: Business | None,
    history: IplosHistory | None,
    status: AppRecStatus,
) -> None:
    """What an accepted message establishes, stored in the one commit with its receipt."""
    if business is None or business.content is None or history is None:
        return
    if status is AppRecStatus.REJECTED:
        # every row read and refused on its own: their løpenummer were received
        content = business.content
        if out.kommune_nr is not None and {f.rule.id for f in content.findings} & {
            "IPL-ALL-DROPPED"
        }:
            out.history = HistoryRecord(
                environment=environment, content=content, before=history, received_only=True
            )
        return
    out.history = HistoryRecord(environment=environment, content=business.content, before=history)
    out.event("history_stored", notifications=len(history_repo.new_rows(business.content)))


# --- the email to innsendingsansvarlig ---------------------------------------------------------


def compose_mails(
    settings: Settings,
    message_id: int,
    *,
    party: Party,
    message: Message,
    out: Outcome,
    business: Business | None,
    findings: Sequence[Finding],
    status: AppRecStatus,
) -> list[Mail]:
    """The email to innsendingsansvarlig (`message_id`: known in the write transaction, so
    the steps queue this as `Outcome.mails_for`): the type 17 contacts of the message and the
    party's registered ones. No personal data: counts per error code and per warning
    rule only."""
    recipients: list[str] = []
    if business is not None and business.content is not None:
        recipients.extend(business.content.innsendingsansvarlig_emails)
    recipients.extend(c.email for c in party.contacts if c.role == "innsendingsansvarlig")
    base = settings.public_base_url.rstrip("/")
    link = (
        f"{base}/api/v1/kommuner/{out.kommune_nr}/feilliste"
        if out.kommune_nr
        else f"{base}/api/v1/messages/{message_id}"
    )
    subject, body = compose_notification(
        party_name=party.name,
        her_id=party.her_id,
        message_ref=message_id,
        received_at=message.received_at,
        status_text=status.dn,
        error_counts=error_counts(findings),
        link=link,
        msghead_msg_id=out.msghead_msg_id,
        receiver=message.to_party_id,
        environment=message.environment,
        warnings=warning_counts(findings),
        rejected=status is AppRecStatus.REJECTED,
        findings_link=f"{base}/api/v1/messages/{message_id}/findings",
    )
    at = utc_now()
    return [
        Mail(recipient=to, subject=subject, body=body, at=at) for to in dict.fromkeys(recipients)
    ]


# --- small helpers ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def reporting_calendar(text: str) -> ReportingCalendar:
    """The reporting calendar setting, parsed once per text."""
    return parse_reporting_calendar(text)


def utc_now() -> datetime:
    return datetime.now(UTC)


def her_number(her: str | None) -> int | None:
    """A HER-id as the registry's integer key, or None when it cannot be one (ASCII digits
    only: str.isdigit() also accepts e.g. full-width digits; at most 18 digits: BIGINT)."""
    if her is None or not (her.isascii() and her.isdigit()) or len(her) > 18:
        return None
    return int(her)


def kommune_nr(kommuner: Sequence[str]) -> str | None:
    """The message's municipality: its first kommuneNr, when that is one (4 digits)."""
    first = kommuner[0] if kommuner else None
    if first is None or len(first) != 4 or not (first.isascii() and first.isdigit()):
        return None
    return first


def certs(party: Party, usage: CertificateUsage) -> tuple[x509.Certificate, ...]:
    return tuple(load_certificate(c.pem.encode()) for c in party.certificates if c.usage == usage)


def first_cert(party: Party, usage: CertificateUsage) -> x509.Certificate | None:
    """The party's certificate of `usage` valid the longest, or None."""
    now = utc_now()
    valid = [c for c in party.certificates if c.usage == usage and c.not_after > now]
    valid.sort(key=lambda c: c.not_after, reverse=True)
    return load_certificate(valid[0].pem.encode()) if valid else None


def payload_policy(
    state: AppState, keys: Keyring, party: Party, now: datetime, *, requires_encryption: bool
) -> stages.PayloadPolicy:
    """What a payload from `party` is opened and judged by: its signing certificates, the
    trust store with the revocation lists, our decryption keys and the caps. Signatures are
    always required."""
    s = state.settings
    return stages.PayloadPolicy(
        party=PartyTrust(orgnr=party.orgnr, signing_certs=certs(party, CertificateUsage.SIGNING)),
        trust=revocation.trust_store(state, keys),
        keys=keys.decryption,
        now=now,
        requires_signing=True,
        requires_encryption=requires_encryption,
        max_inflated=s.max_payload_bytes,
        max_elements=s.max_payload_elements,
    )
