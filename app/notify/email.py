"""The notification email to innsendingsansvarlig: its text (Norwegian) and its MIME form.

The email carries no personal data (DOMAIN.md §3): which message, when, the status, counts of
errors per AppRec code (kodeverk 8221) and where to read more. Never a fødselsnummer, a
brukerNr or a notification GUID: the municipality's error list holds those. As defence in
depth anything fødselsnummer-like is masked in the finished text (`mask_person_ids`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from app.apprec.model import ERROR_CODES
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
) -> tuple[str, str]:
    """(subject, body) of the email about one received message. `message_ref` is KPR's
    reference (the message id in the API); `msghead_msg_id`, when given, is the MsgId the EPJ
    gave the message, so the municipality can find it in its own system."""
    when = received_at.astimezone(OSLO).strftime("%d.%m.%Y kl. %H:%M:%S")
    subject = f"KPR: IPLOS-melding mottatt ({status_text}), referanse {message_ref}"
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
    lines += [f"Mottatt: {when} (norsk tid)", f"Status: {status_text}", ""]
    counted = {code: n for code, n in error_counts.items() if n > 0}
    if counted:
        total = sum(counted.values())
        lines.append(f"Meldingen har {total} feil, fordelt på feilkode (kodeverk 8221):")
        for code in sorted(counted):
            text = ERROR_CODES.get(code)
            label = f"{code} ({text})" if text else code
            lines.append(f"  {label}: {counted[code]}")
    else:
        lines.append("Meldingen har ingen feil. Eventuelle merknader står i feillisten.")
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
