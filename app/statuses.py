"""The stored states and kinds, one enum each, used by the intake, the repositories, the
metrics and the API. Stored as their string values (generic String columns)."""

from __future__ import annotations

from enum import StrEnum

from app.apprec.model import AppRecStatus


class MessageStatus(StrEnum):
    RECEIVED = "RECEIVED"  # stored, not yet answered (only while the transaction is open)
    OK = "OK"  # AppRec 1
    AVVIST = "AVVIST"  # AppRec 2
    OK_FEIL_I_DELMELDING = "OK_FEIL_I_DELMELDING"  # AppRec 3
    MESSAGE_ERROR = "MESSAGE_ERROR"  # refused with an ebMS MessageError
    DUPLICATE = "DUPLICATE"  # a resend: the stored reply, or the stored AppRec, again
    SIGNAL = "SIGNAL"  # an Acknowledgment or MessageError from a party
    SIGNAL_REFUSED = "SIGNAL_REFUSED"  # a signal that could not be accepted
    TOO_LARGE = "TOO_LARGE"  # refused with 413 before the body was read
    FAILED = "FAILED"  # an internal error or outage; the sender retries

    @classmethod
    def of_apprec(cls, status: AppRecStatus) -> MessageStatus:
        return _BY_APPREC[status]


_BY_APPREC = {
    AppRecStatus.OK: MessageStatus.OK,
    AppRecStatus.REJECTED: MessageStatus.AVVIST,
    AppRecStatus.OK_ERROR_IN_PART: MessageStatus.OK_FEIL_I_DELMELDING,
}
# Messages that got an AppRec: the ones a MsgHead MsgId is judged against.
ANSWERED = frozenset(_BY_APPREC.values())


class ReceiptKind(StrEnum):
    """`receipt.kind`: what the stored reply is."""

    APPREC = "apprec"  # an Acknowledgment with the AppRec
    MESSAGE_ERROR = "message_error"  # an ebMS MessageError


class CertificateUsage(StrEnum):
    """`party_certificate.usage`: Norwegian enterprise certificates come in pairs."""

    SIGNING = "signing"  # KeyUsage nonRepudiation (and/or digitalSignature)
    ENCRYPTION = "encryption"  # KeyUsage keyEncipherment
