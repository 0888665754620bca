"""The states a stored message ends in, as one enum used by the intake, its repository, the
metrics and the API. Stored as the string value (`message.status`, String(30))."""

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
