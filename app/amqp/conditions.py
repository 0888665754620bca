"""The `errorCondition` values a Helsenorge.Messaging receiver reports on `{sender}_error`."""

from __future__ import annotations

from enum import StrEnum


class ErrorCondition(StrEnum):
    INVALID_FIELD_VALUE = "transport:invalid-field-value"
    NOT_WELL_FORMED_XML = "transport:not-well-formed-xml"
    INTERNAL_ERROR = "transport:internal-error"
    SPOOFING_ATTACK = "abuse:spoofing-attack"
    UNSUPPORTED_MESSAGE = "transport:unsupported-message"
    INVALID_CERTIFICATE = "transport:invalid-certificate"
    EXPIRED_CERTIFICATE = "transport:expired-certificate"
    REVOKED_CERTIFICATE = "transport:revoked-certificate"
    UNVERIFIED_CERTIFICATE = "transport:unverified-certificate"
    MISSING_CERTIFICATE = "transport:missing-certificate"
