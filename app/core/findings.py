"""Findings: the common currency of every check in every layer.

A check yields `Finding`s; the receipt builder maps them to an ebMS error or an AppRec status
and error codes in one table, and the same findings feed the audit log, the operator API, the
municipality's error list and the public feedback.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Layer(StrEnum):
    TRANSPORT = "transport"
    SECURITY = "security"
    MSGHEAD = "msghead"
    CONTENT = "content"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Consequence(StrEnum):
    """What a broken rule does to the message."""

    # The transport failed: the answer is an ebMS MessageError, no AppRec.
    MESSAGE_ERROR = "message_error"
    # The whole business message is rejected: AppRec status 2 (Avvist).
    REJECT_MESSAGE = "reject_message"
    # Only one notification (row) is dropped: AppRec status 3 (OK, feil i delmelding).
    DROP_NOTIFICATION = "drop_notification"
    # The notification is kept and stored with its finding beside it, but it is an error the
    # municipality must correct in the EPJ (the Annotations say "Ingen handling", issue 21):
    # AppRec status 3, and the row is in the error list until a correction arrives.
    KEEP_WITH_ERROR = "keep_with_error"
    # Accepted; the value is noted (and may be blanked): AppRec status 1 with no Error.
    WARN = "warn"


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of the catalogue. `id` is stable: it is stored, published and documented."""

    id: str
    layer: Layer
    consequence: Consequence
    title: str  # English, for operators and docs/rules.md
    text_no: str  # Norwegian, for the sender (AppRec OT, ebMS Description, error lists)
    apprec_code: str | None = None  # kodeverk 8221 (T01, E10, S01, ...) when it reaches an AppRec
    ebms_error_code: str | None = None  # ebMS errorCode when it is a transport error
    # A temporary failure on our side (an outage, revocation status unavailable): the sender
    # should retry, so its ebMS severity is Warning (ebMS 2.0: Error means unrecoverable).
    transient: bool = False

    @property
    def severity(self) -> Severity:
        if self.consequence is Consequence.WARN or self.transient:
            return Severity.WARNING
        return Severity.ERROR


@dataclass(frozen=True, slots=True)
class Subject:
    """Whom a finding concerns. `fid` is personal data: it goes to the database and the
    municipality's own error list only, never to logs, emails, AppRec OT or public pages."""

    notification_guid: str | None = None
    bruker_nr: str | None = None
    fid: str | None = None
    kommune_nr: str | None = None
    lopenr: int | None = None  # the notification's løpenummer, for the error list


@dataclass(frozen=True, slots=True)
class Finding:
    rule: Rule
    location: str  # an XPath-like path, a MIME part or a header name
    detail: str  # Norwegian, specific: what was found and what to do; never a fid
    subject: Subject | None = None

    @property
    def severity(self) -> Severity:
        return self.rule.severity

    @property
    def layer(self) -> Layer:
        return self.rule.layer
