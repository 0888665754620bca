"""The adapter from the AMQP inbox to the intake core (`IntakeCore.process`, app/intake/core.py).

An inbox message becomes a `ReceivedPayload` (CMS SignedData inside EnvelopedData, as
Helsenorge sends); the core's outcome becomes the transport's answer: an AppRec, signed then
encrypted to the sender's encryption certificate, for `{sender}_async`; a refusal as an
`errorCondition` for `{sender}_error`; a temporary failure as "retry from the store later".
"""

from __future__ import annotations

from typing import Protocol

from cryptography import x509
from sqlalchemy import select

from app.amqp.conditions import ErrorCondition
from app.amqp.core_port import InboxMessage, PortOutcome, Verdict
from app.amqp.envelope import Refusal
from app.intake.received import (
    CoreOutcome,
    OutcomeKind,
    PayloadProtection,
    ReceivedPayload,
    TransportAudit,
)
from app.models import Party, PartyCertificate
from app.security import cms
from app.state import AppState

# The core's condition codes (ebXML style) by what they name, to Helsenorge's conditions.
_BY_WORD: tuple[tuple[str, ErrorCondition], ...] = (
    ("spoof", ErrorCondition.SPOOFING_ATTACK),
    ("revoked", ErrorCondition.REVOKED_CERTIFICATE),
    ("expired", ErrorCondition.EXPIRED_CERTIFICATE),
    ("missing-cert", ErrorCondition.MISSING_CERTIFICATE),
    ("unverified", ErrorCondition.UNVERIFIED_CERTIFICATE),
    ("untrusted", ErrorCondition.UNVERIFIED_CERTIFICATE),
    ("cert", ErrorCondition.INVALID_CERTIFICATE),
    ("signature", ErrorCondition.INVALID_CERTIFICATE),
    ("decrypt", ErrorCondition.INVALID_CERTIFICATE),
    ("xml", ErrorCondition.NOT_WELL_FORMED_XML),
    ("size", ErrorCondition.UNSUPPORTED_MESSAGE),
    ("unsupported", ErrorCondition.UNSUPPORTED_MESSAGE),
    ("internal", ErrorCondition.INTERNAL_ERROR),
)


class Core(Protocol):
    async def process(self, received: ReceivedPayload) -> CoreOutcome: ...


def error_condition(condition: str | None) -> ErrorCondition:
    """Helsenorge's `errorCondition` for the core's condition code."""
    if condition:
        for known in ErrorCondition:
            if condition == known.value:
                return known
        lowered = condition.lower()
        for word, mapped in _BY_WORD:
            if word in lowered:
                return mapped
    return ErrorCondition.INVALID_FIELD_VALUE


def received_payload(message: InboxMessage) -> ReceivedPayload:
    envelope = message.envelope
    return ReceivedPayload(
        transport="amqp",
        transport_message_id=envelope.message_id,
        from_her_id=envelope.application.get("fromHerId"),
        to_her_id=envelope.application.get("toHerId"),
        cpa_id=envelope.application.get("cpaId"),
        received_at=message.received_at,
        payload=message.body,
        protection=PayloadProtection.CMS_SIGNED_ENVELOPED,
        audit=TransportAudit(
            request_id=envelope.message_id,
            content_type=envelope.content_type,
            details={"queue": message.queue, "subject": envelope.subject or ""},
        ),
    )


class CoreAdapter:
    """`IntakePort` on the intake core."""

    def __init__(self, core: Core, state: AppState) -> None:
        self.core = core
        self.state = state

    async def process(self, message: InboxMessage) -> PortOutcome:
        outcome = await self.core.process(received_payload(message))
        if outcome.kind is OutcomeKind.TEMPORARY:
            return PortOutcome(Verdict.RETRY, message_id=outcome.message_id, reason=outcome.reason)
        if outcome.kind is OutcomeKind.REFUSED or outcome.apprec is None:
            refusal = Refusal(
                error_condition(outcome.condition),
                outcome.reason or "Meldingen ble avvist.",
            )
            return PortOutcome(Verdict.ERROR, refusal=refusal, message_id=outcome.message_id)
        protected = await self.protect(outcome.apprec, message.envelope.from_her_id)
        return PortOutcome(Verdict.APPREC, apprec=protected, message_id=outcome.message_id)

    async def protect(self, apprec: bytes, her_id: int | None) -> bytes:
        """Sign (KPR's signing key) then encrypt to the party's encryption certificate."""
        signer = self.state.keyring.signing
        document = cms.sign_data(apprec, signer) if signer is not None else apprec
        recipient = await self.encryption_certificate(her_id) if her_id is not None else None
        return cms.encrypt_enveloped(document, recipient) if recipient is not None else document

    async def encryption_certificate(self, her_id: int) -> x509.Certificate | None:
        async with self.state.sessions() as session:
            pem = await session.scalar(
                select(PartyCertificate.pem)
                .join(Party, Party.id == PartyCertificate.party_id)
                .where(Party.her_id == her_id, PartyCertificate.usage == "encryption")
                .order_by(PartyCertificate.not_after.desc())
                .limit(1)
            )
        return x509.load_pem_x509_certificate(pem.encode()) if pem else None
