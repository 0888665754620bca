"""The last intake step: the AppRec built for the message and wrapped in its signed ebXML
reply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from app.apprec.model import AppRecStatus
from app.ebxml import build as ebuild
from app.ebxml.envelope import EbmsHeader
from app.security import cms
from app.security.keys import KeyPair
from app.security.xmldsig import envelope_signer


@dataclass(frozen=True, slots=True)
class BuiltReceipt:
    apprec: bytes
    apprec_id: str
    status: AppRecStatus
    reply: ebuild.BuiltMessage


def wrap_apprec(
    apprec: bytes,
    *,
    apprec_id: str,
    status: AppRecStatus,
    header: EbmsHeader,
    now: datetime,
    reply_message_id: str,
    encrypt_to: x509.Certificate | None,
    signer: KeyPair | None,
) -> BuiltReceipt:
    """An AppRec (new, or a stored one sent again) signed, encrypted to the sender and put in
    a signed ebXML reply with the Acknowledgment of `header`."""
    # The AppRec schema has no place for ds:Signature: the document is signed as CMS
    # SignedData and then encrypted (sign-then-encrypt), as AMQP-style senders do. Without an
    # encryption certificate it goes as plain XML, so it is not signed for nothing.
    if encrypt_to is not None:
        document = cms.sign_data(apprec, signer) if signer is not None else apprec
        payload = ebuild.Payload(
            cms.encrypt_enveloped(document, encrypt_to),
            "application/pkcs7-mime; smime-type=enveloped-data",
        )
    else:
        payload = ebuild.Payload(apprec, "text/xml; charset=UTF-8")
    reply = ebuild.build_reply(
        header,
        message_id=reply_message_id,
        timestamp=now,
        apprec=payload,
        sign=envelope_signer(signer),
    )
    return BuiltReceipt(apprec, apprec_id, status, reply)
