"""The last intake step: the AppRec built for the message and wrapped in its signed ebXML
reply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from app.apprec.build import build_receipt
from app.apprec.mapping import receipt_outcome
from app.apprec.model import AppRecStatus, AppRecVersion
from app.apprec.model import Party as AppRecParty
from app.core.findings import Finding
from app.ebxml import build as ebuild
from app.ebxml.envelope import EbmsHeader
from app.msghead.model import MsgHead
from app.security import cms
from app.security.keys import KeyPair
from app.security.xmldsig import envelope_signer


@dataclass(frozen=True, slots=True)
class BuiltReceipt:
    apprec: bytes
    apprec_id: str
    status: AppRecStatus
    reply: ebuild.BuiltMessage


def build_apprec_reply(
    findings: Sequence[Finding],
    *,
    header: EbmsHeader,
    msghead: MsgHead | None,
    our_her: str,
    our_name: str,
    sender_name: str | None,
    now: datetime,
    apprec_id: str,
    reply_message_id: str,
    version: AppRecVersion,
    software_version: str,
    encrypt_to: x509.Certificate | None,
    signer: KeyPair | None,
) -> BuiltReceipt:
    """The AppRec for the findings, encrypted to the sender, in a signed ebXML reply with the
    Acknowledgment."""
    from app.apprec.build import original_from_msghead, receiver_from_msghead

    fallback_sender = AppRecParty(name=sender_name, her_id=header.from_party.her_id)
    original = original_from_msghead(
        msghead, received_at=now, fallback_id=header.message_id, fallback_type=header.action
    )
    apprec = build_receipt(
        findings,
        sender=AppRecParty(name=our_name, her_id=our_her),
        receiver=receiver_from_msghead(msghead, fallback=fallback_sender),
        original=original,
        now=now,
        apprec_id=apprec_id,
        version=version,
        software_version=software_version,
    )
    status = receipt_outcome(findings).status
    return wrap_apprec(
        apprec,
        apprec_id=apprec_id,
        status=status,
        header=header,
        now=now,
        reply_message_id=reply_message_id,
        encrypt_to=encrypt_to,
        signer=signer,
    )


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
