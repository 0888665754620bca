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
from app.security.signed_data import NO_SIGNER_CERTIFICATE
from app.state import AppState

# The findings that name a Helsenorge condition: certificates, and the MsgHead sender that is
# not the `fromHerId` (a spoofing attack in Helsenorge's terms, an error and no AppRec).
_BY_RULE: dict[str, ErrorCondition] = {
    "SEC-CERT-REVOKED": ErrorCondition.REVOKED_CERTIFICATE,
    "SEC-MSG-CERT-REVOKED": ErrorCondition.REVOKED_CERTIFICATE,
    "SEC-CERT-VALIDITY": ErrorCondition.EXPIRED_CERTIFICATE,
    "SEC-MSG-CERT-VALIDITY": ErrorCondition.EXPIRED_CERTIFICATE,
    "SEC-CERT-UNKNOWN": ErrorCondition.UNVERIFIED_CERTIFICATE,
    "SEC-MSG-CERT-UNKNOWN": ErrorCondition.UNVERIFIED_CERTIFICATE,
    "SEC-CERT-ORGNR": ErrorCondition.INVALID_CERTIFICATE,
    "SEC-MSG-CERT-ORGNR": ErrorCondition.INVALID_CERTIFICATE,
    "SEC-CERT-KEY-USAGE": ErrorCondition.INVALID_CERTIFICATE,
    "SEC-MSG-CERT-KEY-USAGE": ErrorCondition.INVALID_CERTIFICATE,
    "SEC-CMS-NO-RECIPIENT": ErrorCondition.INVALID_CERTIFICATE,
    "SEC-CMS-DECRYPT": ErrorCondition.INVALID_CERTIFICATE,
    "SEC-CMS-MALFORMED": ErrorCondition.UNSUPPORTED_MESSAGE,
    "SEC-CMS-ALGORITHM": ErrorCondition.UNSUPPORTED_MESSAGE,
    "MSGHEAD-SENDER-NOT-EBXML-FROM": ErrorCondition.SPOOFING_ATTACK,
    "MSGHEAD-SENDER-NOT-PARTY": ErrorCondition.SPOOFING_ATTACK,
}
_SPOOFING = frozenset(r for r, c in _BY_RULE.items() if c is ErrorCondition.SPOOFING_ATTACK)
# The core's condition codes (ebXML style) by what they name, when no finding says more.
_BY_WORD: tuple[tuple[str, ErrorCondition], ...] = (
    ("spoof", ErrorCondition.SPOOFING_ATTACK),
    ("revoked", ErrorCondition.REVOKED_CERTIFICATE),
    ("expired", ErrorCondition.EXPIRED_CERTIFICATE),
    ("cert", ErrorCondition.INVALID_CERTIFICATE),
    ("decrypt", ErrorCondition.INVALID_CERTIFICATE),
    ("xml", ErrorCondition.NOT_WELL_FORMED_XML),
    ("unsupported", ErrorCondition.UNSUPPORTED_MESSAGE),
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


def refusal_of(outcome: CoreOutcome, from_her: str | None = None) -> Refusal:
    """The error for `{sender}_error`: the first finding that names a condition, else the
    core's condition code. A spoofing attack is told in the bus's terms (the finding's text
    speaks of the ebXML envelope)."""
    for finding in outcome.findings:
        mapped = _BY_RULE.get(finding.rule.id)
        if finding.detail == NO_SIGNER_CERTIFICATE:
            mapped = ErrorCondition.MISSING_CERTIFICATE
        if mapped is ErrorCondition.SPOOFING_ATTACK:
            return Refusal(
                mapped,
                "Avsenderens HER-id i meldingshodet (MsgHead) er ikke fromHerId "
                f"{from_her or '(mangler)'} som meldingen er sendt med. De skal være like.",
            )
        if mapped is not None:
            return Refusal(mapped, finding.rule.text_no)
    return Refusal(error_condition(outcome.condition), outcome.reason or "Meldingen ble avvist.")


def spoofed(outcome: CoreOutcome) -> bool:
    return any(f.rule.id in _SPOOFING for f in outcome.findings)


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
        if outcome.kind is OutcomeKind.REFUSED or outcome.apprec is None or spoofed(outcome):
            refusal = refusal_of(outcome, message.envelope.application.get("fromHerId"))
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
