"""The ebXML layer's replies that carry no AppRec: the MessageError (stored with its
findings), and the HTTP binding's refusals of a body too large or a request that failed."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

import anyio

from app.core.findings import Finding
from app.ebxml import build as ebuild
from app.ebxml import rules as ebxml_rules
from app.ebxml.envelope import EbmsHeader, ReplyContext
from app.ebxml.envelope import Party as EbxmlParty
from app.intake import repository as repo
from app.intake import rules as intake_rules
from app.intake import stages
from app.intake.ebms.header import is_signal, signal_refused
from app.intake.ebms.request import IntakeRequest, Reply, new_message
from app.intake.outcome import ClaimKey, Outcome, ReceiptRecord
from app.intake.shared import utc_now
from app.keyring import Keyring
from app.platform.logs import get_logger
from app.query.totals import Windows
from app.state import AppState
from app.statuses import MessageStatus, ReceiptKind

log = get_logger(__name__)


class EbmsReplies:
    """MessageErrors for one configuration (KPR's keys and addresses)."""

    def __init__(self, state: AppState, windows: Windows) -> None:
        self.state = state
        self.settings = state.settings
        self.keys: Keyring = state.keyring
        self.receivers = {str(k): v.value for k, v in self.settings.receivers.items()}
        self.windows = windows

    async def refuse(
        self,
        out: Outcome,
        transport: stages.Transport,
        header: EbmsHeader,
        findings: Sequence[Finding],
        *,
        reference: str,
        transient: bool,
        release: ClaimKey | None,
    ) -> Reply:
        """A refusal before the sender is authenticated. The findings are stored for the
        operator; the sender gets one generic, unsigned answer, whatever the reason (unknown
        HER-id, bad signature, wrong certificate): the answer must not tell an outsider which
        HER-ids are registered. A temporary failure keeps its text so the sender retries
        (`release`: its claim, given up). A signal gets no answer at all."""
        if is_signal(header):
            return signal_refused(out, findings)
        public = (
            list(findings)
            if transient
            else [
                Finding(
                    ebxml_rules.NOT_AUTHENTICATED,
                    "eb:MessageHeader",
                    "Kontroller avsenders HER-id, CPAId, signatur og sertifikat. Oppgi "
                    f"referanse {reference} i kontakt med KPR.",
                )
            ]
        )
        return await self.message_error(
            out, transport, findings, release=release, public=public, sign=False
        )

    async def signal(self, out: Outcome, transport: stages.Transport, header: EbmsHeader) -> Reply:
        """An authenticated ebMS signal: recorded, never a report, never answered with an
        AppRec or an email."""
        if not is_signal(header):
            finding = Finding(
                ebxml_rules.SIGNAL_NOT_SUPPORTED,
                "eb:MessageHeader/eb:Action",
                f"Signalet '{header.action[:60]}' støttes ikke. KPR tar imot Acknowledgment og "
                "MessageError.",
            )
            return await self.message_error(out, transport, [finding])
        out.status = MessageStatus.SIGNAL
        out.event(
            "signal",
            action=header.action,
            ref_to=(header.ref_to_message_id or "")[:200] or None,
            errors=",".join(e.error_code[:40] for e in header.errors[:10]) or None,
        )
        out.log("info", "intake.signal", action=header.action)
        return Reply(204, b"", "text/plain; charset=utf-8")

    async def message_error(
        self,
        out: Outcome,
        transport: stages.Transport,
        findings: Sequence[Finding],
        *,
        release: ClaimKey | None = None,
        public: Sequence[Finding] | None = None,
        sign: bool = True,
    ) -> Reply:
        """A MessageError: `findings` are stored; `public` (default: the same) go to the
        sender. `sign` only once the sender is authenticated: KPR never signs an answer over
        references chosen by someone it does not know. `release`: a temporary failure gives up
        its dedup claim, so the retry is processed afresh."""
        shown = list(findings if public is None else public)
        built = await self._build_message_error(transport, shown, sign=sign)
        rules = sorted({f.rule.id for f in findings})
        out.status = MessageStatus.MESSAGE_ERROR
        out.findings.extend(findings)
        out.receipt = ReceiptRecord(
            kind=ReceiptKind.MESSAGE_ERROR,
            content_type=built.content_type,
            body=built.body,
            reply_ebms_message_id=built.message_id,
            at=utc_now(),
        )
        out.event("receipt_built", reply=ReceiptKind.MESSAGE_ERROR.value, rules=rules)
        out.release_claim = release
        out.log("info", "intake.message_error", rules=rules)
        return Reply(200, built.body, built.content_type)

    async def _build_message_error(
        self, transport: stages.Transport, shown: Sequence[Finding], *, sign: bool
    ) -> ebuild.BuiltMessage:
        signer = stages.envelope_signer(self.keys.signing) if sign else None
        our = self._our_party(transport)
        return await anyio.to_thread.run_sync(
            lambda: ebuild.build_message_error_for(
                transport.reply_context,
                shown,
                our_party=our,
                message_id=new_message_id(),
                timestamp=utc_now(),
                sign=signer,
            )
        )

    def _our_party(self, transport: stages.Transport) -> EbxmlParty:
        her = transport.receiver.her_id if transport.receiver else next(iter(self.receivers))
        return ebuild.her_party(her)

    async def refuse_too_large(self, req: IntakeRequest, size: int) -> str:
        finding = Finding(
            intake_rules.TOO_LARGE,
            "HTTP body",
            f"Meldingen er {size} byte; største tillatte størrelse er "
            f"{self.settings.max_message_bytes} byte (pakket). Del opp meldingen.",
        )
        message_id: int | None = None
        try:
            async with self.state.sessions() as session:
                message = new_message(req, size=size, sha256=None)
                message.raw = None
                message.raw_ref = "not read: larger than KPR_MAX_MESSAGE_BYTES"
                message_id = await repo.add_message(session, message)
                out = Outcome(
                    message_id=message_id,
                    environment=message.environment,
                    received_at=message.received_at,
                    status=MessageStatus.TOO_LARGE,
                    completed_at=req.received_at,
                    findings=[finding],
                )
                out.event_at(req.received_at, "received", size=size)
                out.event_at(req.received_at, "refused", reason="too_large")
                await repo.store_outcome(session, out, self.windows, self.keys.register)
                await session.commit()
        except Exception as exc:  # the database is down: the answer is still 413, not a 500
            log.error("intake.store_too_large_failed", error_type=type(exc).__name__)
        self.state.metrics.messages.labels("TOO_LARGE", "unknown").inc()
        log.info("intake.refused_too_large", message_id=message_id, size=size)
        # the detail of the 413 the transport answers (the HTTP router: a problem body)
        return f"{finding.rule.text_no} {finding.detail}"

    async def store_failure(self, req: IntakeRequest) -> Reply:
        finding = Finding(
            intake_rules.INTERNAL_ERROR,
            "kpr-mottak",
            "Send meldingen på nytt om litt. Vedvarer feilen, kontakt KPR med "
            f"referanse {req.request_id}.",
        )
        try:
            async with self.state.sessions() as session:
                message = new_message(
                    req,
                    size=len(req.body),
                    sha256=req.body_sha256 or hashlib.sha256(req.body).hexdigest(),
                    full=True,
                )
                out = Outcome(
                    message_id=await repo.add_message(session, message),
                    environment=message.environment,
                    received_at=message.received_at,
                    status=MessageStatus.FAILED,
                    # answered (with a temporary error): finished, not half-stored
                    completed_at=utc_now(),
                    findings=[finding],
                )
                out.event("failed", request_id=req.request_id)
                await repo.store_outcome(session, out, self.windows, self.keys.register)
                await session.commit()
        except Exception as exc:  # the database itself is down: nothing stored, still answer
            log.error("intake.store_failure_failed", error_type=type(exc).__name__)
            finding = Finding(
                intake_rules.UNAVAILABLE,
                "kpr-mottak",
                f"Send meldingen på nytt om litt. Referanse {req.request_id}.",
            )
        context = ReplyContext()
        our = ebuild.her_party(next(iter(self.receivers)))
        built = ebuild.build_message_error_for(
            context, [finding], our_party=our, message_id=new_message_id(), timestamp=utc_now()
        )
        return Reply(200, built.body, built.content_type)


def new_message_id() -> str:
    return f"{uuid.uuid4()}@kpr-mottak"


def apprec_receipt(built: stages.BuiltReceipt) -> ReceiptRecord:
    return ReceiptRecord(
        kind=ReceiptKind.APPREC,
        content_type=built.reply.content_type,
        body=built.reply.body,
        reply_ebms_message_id=built.reply.message_id,
        apprec_xml=built.apprec,
        apprec_id=built.apprec_id,
        apprec_status=built.status.value,
        at=utc_now(),
    )
