"""The core's binding for transports that carry a protected payload and nothing around it
(AMQP, the Helsenorge way): the payload is CMS SignedData inside CMS EnvelopedData, the
sender is authenticated by the SignedData's signer, and the answer is the AppRec itself (the
transport signs and encrypts it as it sends it) or a condition the transport maps to its own
error (an AMQP `errorCondition`)."""

from __future__ import annotations

import hashlib
import uuid

import anyio

from app.apprec.model import AppRecStatus
from app.core.findings import Finding
from app.ebxml import rules as ebxml_rules
from app.intake import repository as repo
from app.intake import stages
from app.intake.binding import (
    DELIVERY_FAILURE,
    NOT_AUTHENTICATED,
    TRY_AGAIN,
    Finished,
    FromParty,
    Intake,
)
from app.intake.outcome import Outcome, ReceiptRecord
from app.intake.received import CoreOutcome, OutcomeKind, ReceivedPayload
from app.intake.shared import payload_policy, utc_now
from app.keyring import Keyring
from app.models import Message
from app.state import AppState
from app.statuses import MessageStatus, ReceiptKind

APPREC_CONTENT_TYPE = "application/xml"


class PayloadBinding:
    """`TransportBinding` for a CMS signed-then-encrypted payload."""

    message_id_location = "transport: message id"
    message_id_name = "Meldings-id"

    def __init__(
        self,
        received: ReceivedPayload,
        state: AppState,
        keys: Keyring,
        receivers: dict[str, str],
    ) -> None:
        self.received = received
        self.state = state
        self.keys = keys
        self.receivers = receivers

    def new_message(self) -> Message:
        """The payload's row; the whole payload is kept once the sender is authenticated."""
        received, audit = self.received, self.received.audit
        message = Message(
            received_at=received.received_at,
            request_id=audit.request_id or str(uuid.uuid4()),
            remote_addr=audit.remote_addr,
            content_type=(audit.content_type or received.transport)[:1000],
            size_bytes=len(received.payload),
            sha256=hashlib.sha256(received.payload).hexdigest(),
            raw=received.payload[:4096],
            raw_ref=f"{received.transport}: not authenticated",
            status=MessageStatus.RECEIVED,
            transport=received.transport,  # in the same commit as the outcome
        )
        repo.record_header(
            message,
            ebms_message_id=received.transport_message_id,
            cpa_id=received.cpa_id,
            from_her=received.from_her_id,
            to_her=received.to_her_id,
            action=received.action,
        )
        message.environment = self.receivers.get(received.to_her_id or "", "pilot")
        return message

    def record_arrival(self, out: Outcome) -> None:
        out.event_at(self.received.received_at, "received", size=len(self.received.payload))

    async def before_party(self, intake: Intake) -> None:
        to_her = self.received.to_her_id
        if to_her not in self.receivers:
            finding = Finding(
                ebxml_rules.NOT_AUTHENTICATED,
                "transport: to",
                f"Mottaker HER-id {to_her or '(mangler)'} er ikke KPR.",
            )
            raise Finished(await self.refuse(intake, [finding], transient=False))

    def unknown_sender(self, intake: Intake) -> Finding:
        her = self.received.from_her_id
        return Finding(
            ebxml_rules.NOT_AUTHENTICATED,
            "transport: from",
            f"Avsender HER-id {her or '(mangler)'} er ikke registrert som avsender til KPR.",
        )

    async def refuse(
        self, intake: Intake, findings: list[Finding], *, transient: bool
    ) -> CoreOutcome:
        return _refused(intake.outcome, findings, transient=transient)

    async def open(self, at: FromParty) -> stages.Opened:
        """Decryption and the SignedData (the authentication: its signer must be one of the
        party's signing certificates), in a worker thread."""
        now = self.received.received_at
        policy = payload_policy(self.state, self.keys, at.party, now, requires_encryption=True)
        payload = self.received.payload
        return await anyio.to_thread.run_sync(lambda: stages.open_payload_bytes(payload, policy))

    def raw(self) -> bytes:
        return self.received.payload

    async def admit(self, at: FromParty, opened: stages.Opened) -> None:
        return None  # nothing around the payload to check

    def content_sha256(self) -> str:
        return hashlib.sha256(self.received.payload).hexdigest()

    async def error(
        self,
        at: FromParty,
        findings: list[Finding],
        *,
        transient: bool = False,
        condition: str = NOT_AUTHENTICATED,
    ) -> CoreOutcome:
        return _refused(at.outcome, findings, transient=transient, condition=condition)

    async def replay(self, at: FromParty, original: int) -> CoreOutcome:
        return await _stored_apprec(at, original)

    def check_head(self, at: FromParty, read: stages.BusinessHead) -> Finding | None:
        return None

    async def resend(self, at: FromParty, original: int) -> CoreOutcome:
        return await _stored_apprec(at, original)

    async def deliver(
        self, at: FromParty, apprec: bytes, apprec_id: str, status: AppRecStatus
    ) -> None:
        at.outcome.receipt = ReceiptRecord(
            kind=ReceiptKind.APPREC,
            content_type=APPREC_CONTENT_TYPE,
            body=apprec,
            reply_ebms_message_id=None,
            apprec_xml=apprec,
            apprec_id=apprec_id,
            apprec_status=status.value,
            at=utc_now(),
        )
        at.outcome.event("receipt_built", reply="apprec", status=status.value)


def _refused(
    out: Outcome,
    findings: list[Finding],
    *,
    transient: bool,
    condition: str = NOT_AUTHENTICATED,
) -> CoreOutcome:
    """A refusal; the findings are stored for the operator, the sender is told only the
    condition (an outsider learns nothing of the registry)."""
    out.status = MessageStatus.MESSAGE_ERROR
    out.findings.extend(findings)
    out.event("refused", rules=sorted({f.rule.id for f in findings}))
    if transient:
        return CoreOutcome(
            kind=OutcomeKind.TEMPORARY,
            message_id=None,
            findings=tuple(findings),
            condition=DELIVERY_FAILURE,
            reason=TRY_AGAIN,
        )
    return CoreOutcome(
        kind=OutcomeKind.REFUSED,
        message_id=None,
        findings=tuple(findings),
        condition=condition,
        reason="Kontroller avsenders HER-id, signatur og sertifikat.",
    )


async def _stored_apprec(at: FromParty, original: int) -> CoreOutcome:
    """A payload or MsgHead sent again: its stored AppRec, nothing stored a second time."""
    stored = await repo.stored_apprec(at.session, original)
    if stored is None or stored.apprec_xml is None or stored.apprec_status is None:
        raise RuntimeError(f"message {original} has no stored AppRec")
    at.outcome.status = MessageStatus.DUPLICATE
    at.outcome.event("duplicate", original=original)
    return CoreOutcome(
        kind=OutcomeKind.DUPLICATE,
        message_id=None,
        apprec=stored.apprec_xml,
        apprec_status=AppRecStatus(stored.apprec_status),
    )
