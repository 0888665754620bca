"""The transport seam's types: what a transport hands the intake core (`ReceivedPayload`) and
what the core answers (`CoreOutcome`). No transport's types appear here: an ebXML, AMQP or
SMTP adapter builds a `ReceivedPayload` from what it read, calls `IntakeCore.process` and
wraps the `CoreOutcome` in its own reply (an ebXML Acknowledgment or MessageError, an AMQP
disposition, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from app.apprec.model import AppRecStatus
from app.core.findings import Finding

TransportName = Literal["ebxml-http", "amqp", "ebxml-smtp"]


class PayloadProtection(StrEnum):
    """How the payload bytes are protected, so the core knows how to open them."""

    # ebXML (HTTP or SMTP): CMS EnvelopedData (application/pkcs7-mime) around a MsgHead that
    # carries its own XML-DSig signature. The envelope signature (over the SOAP envelope and
    # the MIME parts) belongs to the ebXML layer and is checked there, before the core.
    EBXML_ENVELOPED_XMLDSIG = "ebxml-enveloped-xmldsig"
    # AMQP / Helsenorge: CMS SignedData (signer certificate inside) inside CMS EnvelopedData;
    # the MsgHead is the SignedData's content. The core decrypts, verifies the SignedData and
    # checks its signer against the party's signing certificates.
    CMS_SIGNED_ENVELOPED = "cms-signed-enveloped"


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportAudit:
    """What the transport saw, for the stored row and the logs (never personal data)."""

    remote_addr: str | None = None
    request_id: str | None = None  # the transport's correlation id (HTTP request id, ...)
    content_type: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)  # e.g. AMQP queue, delivery tag


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedPayload:
    """One business payload as a transport received it."""

    transport: TransportName
    transport_message_id: str  # ebXML MessageId, AMQP message-id, ...: the dedup key's half
    from_her_id: str | None  # the sender's HER-id as the transport claims it
    to_her_id: str | None  # the receiver's HER-id (selects KPR's environment)
    cpa_id: str | None  # None: no CPA (AMQP, or ebXML without one)
    received_at: datetime
    payload: bytes  # the application/pkcs7-mime part (or the AMQP body) as received
    protection: PayloadProtection
    audit: TransportAudit = field(default_factory=TransportAudit)
    # the transport's name of the business message (ebXML Action, AMQP subject): the AppRec's
    # original message type when the MsgHead cannot be read
    action: str | None = None


class OutcomeKind(StrEnum):
    """What became of the payload."""

    ANSWERED = "answered"  # checked and stored: `apprec` answers it
    DUPLICATE = "duplicate"  # seen before: `apprec` is the stored reply, byte for byte
    REFUSED = "refused"  # refused before the business layers (unknown party, signature, ...)
    TEMPORARY = "temporary"  # a temporary failure (revocation status, a lost race): retry
    SIGNAL = "signal"  # an ebMS signal (Acknowledgment, MessageError): recorded, no report


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreOutcome:
    """The core's answer. The transport turns it into its reply."""

    kind: OutcomeKind
    message_id: int | None  # the stored row (None when nothing could be stored)
    apprec: bytes | None = None  # ANSWERED / DUPLICATE: the AppRec (MsgHead XML, signed)
    apprec_status: AppRecStatus | None = None
    findings: tuple[Finding, ...] = ()  # the AppRec's findings, or why it was refused
    # REFUSED / TEMPORARY: a condition code the transport maps to its own error (for ebXML an
    # eb:Error errorCode such as "SecurityFailure"), and a Norwegian reason for the sender
    condition: str | None = None
    reason: str | None = None
    status: str | None = None  # the stored row's status (`MessageStatus`), for metrics and logs
