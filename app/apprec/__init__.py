"""The application receipt: AppRec v1.0/v1.1 build and parse, findings -> status/codes."""

from app.apprec.build import (
    build_apprec,
    build_receipt,
    original_from_msghead,
    receiver_from_msghead,
)
from app.apprec.mapping import DEFAULT_MAX_ERRORS, error_code, receipt_outcome
from app.apprec.model import (
    ERROR_CODE_SYSTEM,
    ERROR_CODES,
    AppRec,
    AppRecError,
    AppRecParty,
    AppRecStatus,
    AppRecVersion,
    OriginalMsgRef,
    Party,
    ReceiptOutcome,
)
from app.apprec.parse import AppRecInvalid, parse_apprec

__all__ = [
    "DEFAULT_MAX_ERRORS",
    "ERROR_CODES",
    "ERROR_CODE_SYSTEM",
    "AppRec",
    "AppRecError",
    "AppRecInvalid",
    "AppRecParty",
    "AppRecStatus",
    "AppRecVersion",
    "OriginalMsgRef",
    "Party",
    "ReceiptOutcome",
    "build_apprec",
    "build_receipt",
    "error_code",
    "original_from_msghead",
    "parse_apprec",
    "receipt_outcome",
    "receiver_from_msghead",
]
