"""The core's binding for ebXML (ebMS 2.0 over HTTP, and over SMTP): the envelope and its
signature around an enveloped, XML-DSig-signed MsgHead, the CPA, ebMS signals, and answers
wrapped as the ebXML reply (the signed Acknowledgment carrying the AppRec, or a MessageError)
that the transport sends back (`reply`). One instance per request."""

from __future__ import annotations

import anyio

from app.apprec.model import AppRecStatus
from app.core.findings import Finding
from app.ebxml import rules as ebxml_rules
from app.ebxml.envelope import EbmsHeader, first_her_id
from app.intake import repository as repo
from app.intake import rules as intake_rules
from app.intake import stages
from app.intake.binding import TRY_AGAIN, Finished, FromParty, Intake
from app.intake.ebms.header import (
    fill_transport,
    is_signal,
    record_arrival,
    registry_checks,
    signal_refused,
)
from app.intake.ebms.replies import EbmsReplies, apprec_receipt, new_message_id
from app.intake.ebms.request import IntakeRequest, Reply, new_message
from app.intake.outcome import ClaimKey, Outcome
from app.intake.received import CoreOutcome, OutcomeKind
from app.intake.shared import first_cert, payload_policy, utc_now
from app.keyring import Keyring
from app.models import Message
from app.state import AppState
from app.statuses import CertificateUsage, MessageStatus


class EbxmlBinding:
    """`TransportBinding` for one ebXML request whose transport (MIME, SOAP, ebMS header)
    was read; `reply` is its answer once the core is done."""

    message_id_location = "eb:MessageHeader/eb:MessageData/eb:MessageId"
    message_id_name = "MessageId"

    def __init__(
        self,
        state: AppState,
        keys: Keyring,
        replies: EbmsReplies,
        request: IntakeRequest,
        transport: stages.Transport,
        body_sha256: str,
    ) -> None:
        self.state = state
        self.keys = keys
        self.replies = replies
        self.request = request
        self.transport = transport
        self.body_sha256 = body_sha256
        self.reply: Reply | None = None

    @property
    def header(self) -> EbmsHeader:
        header = self.transport.header
        assert header is not None  # `before_party` answers a request without one
        return header

    def _done(self, reply: Reply, kind: OutcomeKind) -> CoreOutcome:
        self.reply = reply
        return CoreOutcome(kind=kind, message_id=None)

    # --- on arrival --------------------------------------------------------------------

    def new_message(self) -> Message:
        self.reply = None  # a new attempt (after a race lost) answers afresh
        message = new_message(self.request, size=len(self.request.body), sha256=self.body_sha256)
        message.transport = self.request.transport
        fill_transport(message, self.transport)
        return message

    def record_arrival(self, out: Outcome) -> None:
        record_arrival(out, self.request, self.transport)

    async def before_party(self, intake: Intake) -> None:
        """A transport that could not be read is answered here."""
        transport, header, out = self.transport, self.transport.header, intake.outcome
        if header is not None and transport.findings and is_signal(header):
            raise Finished(self._done(signal_refused(out, transport.findings), OutcomeKind.SIGNAL))
        if transport.findings or header is None:
            reply = await self.replies.message_error(out, transport, transport.findings, sign=False)
            raise Finished(self._done(reply, OutcomeKind.REFUSED))

    def unknown_sender(self, intake: Intake) -> Finding:
        her = first_her_id(self.header.from_party.party_ids)
        return Finding(
            ebxml_rules.FROM_UNKNOWN,
            "eb:MessageHeader/eb:From/eb:PartyId",
            f"Avsender HER-id {her or '(mangler)'} er ikke registrert som avsender til KPR.",
        )

    async def refuse(
        self, intake: Intake, findings: list[Finding], *, transient: bool
    ) -> CoreOutcome:
        """A refusal before the sender is authenticated (`EbmsReplies.refuse`)."""
        reply = await self.replies.refuse(
            intake.outcome,
            self.transport,
            self.header,
            findings,
            reference=intake.message.request_id,
            transient=transient,
            release=_claim_key(intake.message) if transient else None,
        )
        return self._done(reply, OutcomeKind.TEMPORARY if transient else OutcomeKind.REFUSED)

    # --- authentication and the header's checks ----------------------------------------

    async def open(self, at: FromParty) -> stages.Opened:
        """`stages.open_message` with the party's certificates, in a worker thread."""
        party, header = at.party, self.header
        cpa = next((c for c in party.cpas if c.cpa_id == header.cpa_id), None)
        # plaintext_allowed only lets a party send the payload unencrypted, and a CPA that
        # demands encryption always wins
        requires_encryption = not party.plaintext_allowed or (
            cpa is not None and cpa.requires_encryption
        )
        policy = payload_policy(
            self.state,
            self.keys,
            party,
            at.message.received_at,
            requires_encryption=requires_encryption,
        )
        payload = not header.is_signal  # a signal stops after the envelope signature
        return await anyio.to_thread.run_sync(
            lambda: stages.open_message(self.transport, policy, payload=payload)
        )

    def raw(self) -> bytes:
        return self.request.body

    async def admit(self, at: FromParty, opened: stages.Opened) -> None:
        """The registry's checks, signals, and transport faults after authentication."""
        out, transport, header = at.outcome, self.transport, self.header
        findings = await registry_checks(at.session, header, at.party)
        if findings:
            raise Finished(await self.error(at, findings))
        if header.is_signal:
            reply = await self.replies.signal(out, transport, header)
            raise Finished(self._done(reply, OutcomeKind.SIGNAL))
        if opened.transport_findings:
            found = list(opened.transport_findings)
            raise Finished(await self.error(at, found, transient=opened.transient))

    def content_sha256(self) -> str:
        return self.transport.content_sha256

    async def error(
        self,
        at: FromParty,
        findings: list[Finding],
        *,
        transient: bool = False,
        condition: str = "",
    ) -> CoreOutcome:
        """A signed MessageError; a temporary one gives up the claim, so the retry is
        processed afresh."""
        release = _claim_key(at.message) if transient else None
        reply = await self.replies.message_error(
            at.outcome, self.transport, findings, release=release
        )
        return self._done(reply, OutcomeKind.TEMPORARY if transient else OutcomeKind.REFUSED)

    def check_head(self, at: FromParty, read: stages.BusinessHead) -> Finding | None:
        """Without a CPA the Action must name the MsgHead's type (DOMAIN 2.1)."""
        type_v = read.msghead.type_v if read.msghead is not None else None
        action = self.header.action
        if at.party.cpas or not type_v or action == type_v:
            return None
        return Finding(
            ebxml_rules.SERVICE_NOT_ALLOWED,
            "eb:MessageHeader/eb:Action",
            f"Action '{action}' stemmer ikke med MsgInfo/Type '{type_v}'. Uten avtalt CPA "
            "skal Action være lik MsgInfo/Type.",
        )

    # --- answers -----------------------------------------------------------------------

    async def replay(self, at: FromParty, original: int) -> CoreOutcome:
        """The same ebXML message again: the stored reply, byte for byte."""
        stored = await repo.receipt_for(at.session, original)
        if stored is None:  # cannot happen: claim and receipt commit together
            retry = Finding(intake_rules.INTERNAL_ERROR, self.message_id_location, TRY_AGAIN)
            return await self.error(at, [retry], transient=True)
        out = at.outcome
        out.status = MessageStatus.DUPLICATE
        out.event("duplicate", original=original)
        out.log("info", "intake.duplicate", original=original)
        return self._done(Reply(200, stored.body, stored.content_type), OutcomeKind.DUPLICATE)

    async def resend(self, at: FromParty, original: int) -> CoreOutcome:
        """An identical business document sent again (a lost reply): its stored AppRec, in a
        new reply to this ebXML message. Nothing is stored or emailed a second time."""
        stored = await repo.stored_apprec(at.session, original)
        if stored is None or stored.apprec_xml is None or stored.apprec_status is None:
            raise RuntimeError(f"message {original} has no stored AppRec")
        status = AppRecStatus(stored.apprec_status)
        await self._wrap(at, stored.apprec_xml, stored.apprec_id or "", status)
        out = at.outcome
        out.status = MessageStatus.DUPLICATE
        out.event("msghead_resend", original=original)
        out.log("info", "intake.msghead_resend", original=original)
        assert self.reply is not None
        return CoreOutcome(
            kind=OutcomeKind.DUPLICATE,
            message_id=None,
            apprec=stored.apprec_xml,
            apprec_status=status,
        )

    async def deliver(
        self, at: FromParty, apprec: bytes, apprec_id: str, status: AppRecStatus
    ) -> None:
        """The AppRec signed, encrypted to the sender, in a signed reply with the
        Acknowledgment."""
        encrypted = await self._wrap(at, apprec, apprec_id, status)
        at.outcome.event(
            "receipt_built",
            reply="apprec",
            status=status.value,
            encrypted=encrypted,
            signed=self.keys.signing is not None,
        )

    async def _wrap(
        self, at: FromParty, apprec: bytes, apprec_id: str, status: AppRecStatus
    ) -> bool:
        encrypt_to = first_cert(at.party, CertificateUsage.ENCRYPTION)
        built = await anyio.to_thread.run_sync(
            lambda: stages.wrap_apprec(
                apprec,
                apprec_id=apprec_id,
                status=status,
                header=self.header,
                now=utc_now(),
                reply_message_id=new_message_id(),
                encrypt_to=encrypt_to,
                signer=self.keys.signing,
            )
        )
        at.outcome.receipt = apprec_receipt(built)
        self.reply = Reply(200, built.reply.body, built.reply.content_type)
        return encrypt_to is not None


def _claim_key(message: Message) -> ClaimKey | None:
    """The dedup key this request claims (or would), when the header names one."""
    if not (message.ebms_message_id and message.from_party_id):
        return None
    return ClaimKey(from_party_id=message.from_party_id, ebms_message_id=message.ebms_message_id)
