"""The notification email to innsendingsansvarlig: its text (Norwegian) and its MIME form.

The email carries no personal data (DOMAIN.md §3): which message, when, the status, counts of
errors per AppRec code (kodeverk 8221), counts of warnings per rule (rule id and its Norwegian
text) and where to read more. Never a fødselsnummer, a brukerNr, a notification GUID or a
finding's detail: the municipality's error list holds those. As defence in depth anything
fødselsnummer-like is masked in the finished text (`mask_person_ids`).

It tells what the AppRec cannot (issue 21): the AppRec has no Error for a warning, so a
message that came after the deadline, after the correction deadline (its rows do not count in
the year's figures) or with løpenummer missing gets status 1 "OK". The email names those
first, under "Viktig", and never says "ingen feil" of a message with warnings.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from app.apprec.model import ERROR_CODES
from app.core.findings import Consequence, Finding
from app.identifiers import mask_person_ids
from app.msghead.xmlutil import OSLO

# The MsgId is the sender's text in KPR's email: shown only when it is an id (a GUID or the
# like), never a line break, a link or a sentence someone could phish with.
_SAFE_MSG_ID = re.compile(r"[A-Za-z0-9{}][A-Za-z0-9{}._:@-]{0,99}")


_ENVIRONMENT_NO = {
    "pilot": " (pilotmottaket; ikke ordinær rapportering)",
    "test": " (testmottaket; ikke ordinær rapportering)",
    "production": " (ordinær rapportering)",
}


# Warnings the reader must not miss: the AppRec says "OK" of them. Rule ids are stable.
IMPORTANT_RULES = (
    "IPL-CALENDAR-AFTER-CORRECTION",  # "kommer ikke med i årets tall"
    "IPL-CALENDAR-LATE",
    "IPL-LOPENR-GAP",
    "IPL-CALENDAR-PILOT-WINDOW",
)


_MAX_DETAILS = 3


@dataclass(frozen=True, slots=True)
class RuleCount:
    """How many findings of one rule a message has: the rule's id and Norwegian text (the
    same for every message: no personal data), and the count."""

    rule_id: str
    text: str
    count: int
    # what an important warning says of the whole message (which løpenummer are missing,
    # which deadline): only from findings that name no notification, hence no person
    details: tuple[str, ...] = ()

    @property
    def important(self) -> bool:
        return self.rule_id in IMPORTANT_RULES


def warning_counts(findings: Sequence[Finding]) -> list[RuleCount]:
    """The warnings per rule: the important ones first (in `IMPORTANT_RULES` order), then the
    most frequent first, ties by rule id."""
    warned = [f for f in findings if f.rule.consequence is Consequence.WARN]
    counts = Counter(f.rule.id for f in warned)
    texts = {f.rule.id: f.rule.text_no for f in warned}
    details: dict[str, list[str]] = {}
    for f in warned:
        if f.rule.id in IMPORTANT_RULES and _names_no_one(f):
            shown = details.setdefault(f.rule.id, [])
            if f.detail not in shown and len(shown) < _MAX_DETAILS:
                shown.append(f.detail)
    rank = {r: i for i, r in enumerate(IMPORTANT_RULES)}
    order = sorted(counts, key=lambda r: (rank.get(r, len(rank)), -counts[r], r))
    return [RuleCount(r, texts[r], counts[r], tuple(details.get(r, ()))) for r in order]


def _names_no_one(finding: Finding) -> bool:
    s = finding.subject
    return s is None or not (s.notification_guid or s.bruker_nr or s.fid)


def compose_notification(
    *,
    party_name: str,
    her_id: int | str,
    message_ref: int | str,
    received_at: datetime,
    status_text: str,
    error_counts: Mapping[str, int],
    link: str,
    msghead_msg_id: str | None = None,
    receiver: str | None = None,
    environment: str | None = None,
    warnings: Sequence[RuleCount] = (),
    rejected: bool = False,
    findings_link: str | None = None,
) -> tuple[str, str]:
    """(subject, body) of the email about one received message. `message_ref` is KPR's
    reference (the message id in the API); `msghead_msg_id`, when given, is the MsgId the EPJ
    gave the message, so the municipality can find it in its own system. `warnings`: the
    message's warnings per rule (`warning_counts`); `rejected`: the AppRec rejected the
    message (nothing stored: the important warnings' texts, which speak of stored rows, are
    not put first); `findings_link`: where the message's findings, warnings too, are read
    (the error list holds only the failing notifications)."""
    when = received_at.astimezone(OSLO).strftime("%d.%m.%Y kl. %H:%M:%S")
    counted = {code: n for code, n in error_counts.items() if n > 0}
    warned = [w for w in warnings if w.count > 0]
    shown_status = status_text
    if warned and not counted:
        shown_status = f"{status_text}, med merknader"
    subject = f"KPR: IPLOS-melding mottatt ({shown_status}), referanse {message_ref}"
    lines = [
        "Hei,",
        "",
        f"KPR har mottatt en IPLOS-melding fra {party_name} (HER-id {her_id}).",
        "",
        f"Meldingsreferanse hos KPR: {message_ref}",
    ]
    if receiver is not None:
        # the pilot and test addresses are not the report: say which one got the message
        kind = _ENVIRONMENT_NO.get(environment or "", "")
        lines.append(f"Sendt til: KPR HER-id {receiver}{kind}")
    if msghead_msg_id:
        shown = msghead_msg_id if _SAFE_MSG_ID.fullmatch(msghead_msg_id) else None
        lines.append(f"Meldingens MsgId: {shown or '(ikke vist: inneholder uventede tegn)'}")
    lines += [f"Mottatt: {when} (norsk tid)", f"Status: {shown_status}", ""]
    lines += _findings_lines(counted, warned, rejected=rejected, findings_link=findings_link)
    lines += [
        "",
        "Detaljer finnes i applikasjonskvitteringen i EPJ-systemet. Les mer hos KPR "
        "(krever tilgang; kommunens feilliste viser hver feil med brukerNr, så den kan rettes "
        "i EPJ):",
        link,
        "",
        "Denne e-posten inneholder ingen personopplysninger og er sendt automatisk av KPRs "
        "mottak for IPLOS-meldinger.",
        "",
    ]
    return mask_person_ids(" ".join(subject.split())), mask_person_ids("\n".join(lines))


def _findings_lines(
    counted: Mapping[str, int],
    warned: Sequence[RuleCount],
    *,
    rejected: bool,
    findings_link: str | None,
) -> list[str]:
    """The email's middle: the important warnings first, then the errors per code and the
    warnings per rule, with where to read the findings."""
    lines: list[str] = []
    important = [w for w in warned if w.important and not rejected]
    if important:
        lines.append("Viktig (står ikke i applikasjonskvitteringen):")
        for w in important:
            lines.append(f"  - {w.text} ({w.rule_id})")
            lines += [f"    {' '.join(d.split())}" for d in w.details]
        lines.append("")
    if counted:
        total = sum(counted.values())
        lines.append(f"Meldingen har {total} feil, fordelt på feilkode (kodeverk 8221):")
        for code in sorted(counted):
            text = ERROR_CODES.get(code)
            label = f"{code} ({text})" if text else code
            lines.append(f"  {label}: {counted[code]}")
    elif warned:
        lines.append("Meldingen er tatt imot uten avviste notifikasjoner, men har merknader.")
    else:
        lines.append("Meldingen har ingen feil og ingen merknader.")
    if warned:
        total = sum(w.count for w in warned)
        noun = "merknad (advarsel)" if total == 1 else "merknader (advarsler)"
        lines += ["", f"Meldingen har {total} {noun}, fordelt på regel:"]
        lines += [f"  {w.rule_id}: {w.count} ({w.text})" for w in warned]
    if warned and findings_link:
        lines += ["", "Merknadene til denne meldingen (krever tilgang):", findings_link]
    return lines


def message_id_for(outbox_id: int, created_at: datetime, mail_from: str) -> str:
    """A Message-ID that stays the same when the same outbox row is sent again (at least once:
    a receiving system can recognise the duplicate)."""
    domain = mail_from.rpartition("@")[2].strip("<> ") or "kpr-mottak.invalid"
    token = hashlib.sha256(f"{outbox_id}:{created_at.isoformat()}".encode()).hexdigest()[:20]
    return f"<kpr-notify.{outbox_id}.{token}@{domain}>"


def build_email(
    *,
    mail_from: str,
    recipient: str,
    subject: str,
    body: str,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """The MIME message: UTF-8 plain text with Message-ID and Date, marked auto-generated."""
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    msg.set_content(body, charset="utf-8")
    return msg
