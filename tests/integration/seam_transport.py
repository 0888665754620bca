"""A test-only transport: hands the intake core a payload without any ebXML, as the AMQP
adapter will (CMS SignedData inside CMS EnvelopedData, made with `cryptography`'s own PKCS#7
builders, not the product's), and reads the core's outcome."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from app.intake.core import IntakeCore
from app.intake.received import (
    CoreOutcome,
    PayloadProtection,
    ReceivedPayload,
    TransportAudit,
)
from app.security.keys import KeyPair


def signed_and_enveloped(document: bytes, signer: KeyPair, recipient: x509.Certificate) -> bytes:
    """`document` as CMS SignedData (signer certificate inside) inside CMS EnvelopedData."""
    signed = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(document)
        .add_signer(signer.certificate, signer.private_key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(signed)
        .add_recipient(recipient)
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


class LoopbackTransport:
    """The smallest transport: no framing, the payload and what it claims, to the core."""

    name = "amqp"

    def __init__(self, core: IntakeCore) -> None:
        self.core = core

    async def deliver(
        self, payload: bytes, *, message_id: str, from_her: str, to_her: str
    ) -> CoreOutcome:
        received = ReceivedPayload(
            transport="amqp",
            transport_message_id=message_id,
            from_her_id=from_her,
            to_her_id=to_her,
            cpa_id=None,
            received_at=datetime.now(UTC),
            payload=payload,
            protection=PayloadProtection.CMS_SIGNED_ENVELOPED,
            audit=TransportAudit(details={"queue": "test"}),
        )
        return await self.core.process(received)
