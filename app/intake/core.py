"""The transport-independent intake core: one entry point, `IntakeCore.process`, that takes
a `ReceivedPayload` (whatever transport brought it) and returns a `CoreOutcome`.

The steps, in order: registered party (`_registered_party`) -> open the payload (decryption
and the business signature, which here is the authentication) -> dedup by (sender, transport
message id) -> MsgHead and content -> AppRec -> history, register store and email -> the one
commit (`_write`). A step that ends the processing early raises `_Finished` with the outcome
it recorded: the only early exit. The transport (AMQP, ebXML over SMTP; ebXML over HTTP
keeps its own path in `service.py` for now) reads its framing before and wraps the outcome
in its own reply after; nothing here knows any of them."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import IO

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from app import __version__
from app.apprec.build import build_receipt, original_from_msghead, receiver_from_msghead
from app.apprec.mapping import receipt_outcome
from app.apprec.model import KPR_NAME, AppRecStatus, AppRecVersion
from app.apprec.model import Party as AppRecParty
from app.content.model import ContentContext, HistoryKeys, IplosHistory
from app.core.findings import Finding
from app.deadlines import repository as deadline_repo
from app.ebxml import rules as ebxml_rules
from app.intake import history as history_repo
from app.intake import repository as repo
from app.intake import revocation, stages
from app.intake.outcome import Claim, ClaimKey, Outcome, ReceiptRecord
from app.intake.received import CoreOutcome, OutcomeKind, ReceivedPayload
from app.intake.shared import (
    Conflict,
    certs,
    compose_mails,
    decide_races,
    her_number,
    keep_history,
    record_business,
    reporting_calendar,
    utc_now,
)
from app.kommuner import repository as kommune_repo
from app.kommuner.years import renumbered_alike
from app.models import Message, Party
from app.msghead.checks import msgid_duplicate
from app.parties import repository as party_repo
from app.platform.logs import get_logger
from app.platform.settings import ReceiverEnvironment
from app.query import totals
from app.registries import lookup as registries  # --- registries ---
from app.security.certificates import PartyTrust
from app.state import AppState
from app.statuses import CertificateUsage, MessageStatus, ReceiptKind

log = get_logger(__name__)

_ATTEMPTS = 3  # a race lost in the write transaction is checked again, so many times
APPREC_CONTENT_TYPE = "application/xml"
# conditions of a refusal (the transport maps them to its own error codes)
NOT_AUTHENTICATED = "NotAuthenticated"
UNKNOWN_RECEIVER = "UnknownReceiver"
DUPLICATE_INCONSISTENT = "DuplicateInconsistent"
DELIVERY_FAILURE = "DeliveryFailure"


class _Finished(Exception):
    """Processing ends early with this outcome (already recorded in the `Outcome`)."""

    def __init__(self, outcome: CoreOutcome) -> None:
        self.outcome = outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class _Intake:
    """One received payload being processed: what every step reads, and the outcome the
    steps fill in (written at the one commit)."""

    received: ReceivedPayload
    session: AsyncSession
    message: Message
    outcome: Outcome
    environment: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _FromParty(_Intake):
    """A payload from a registered party: the context of the steps after the party step."""

    party: Party


class IntakeCore:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.settings = state.settings
        self.keys = state.keyring
        self.receivers = {str(k): v.value for k, v in self.settings.receivers.items()}
        self.windows = totals.windows_for(self.settings.reporting_calendar)

    async def process(self, received: ReceivedPayload) -> CoreOutcome:
        """Check, store and answer one received payload; commits once, before it returns."""
        for _ in range(_ATTEMPTS):
            try:
                return await self._attempt(received)
            except Conflict:
                log.info("intake.core.checked_again", transport=received.transport)
        return CoreOutcome(
            kind=OutcomeKind.TEMPORARY,
            message_id=None,
            condition=DELIVERY_FAILURE,
            reason="Meldingen kunne ikke behandles nå. Send den på nytt om litt.",
        )

    async def _attempt(self, received: ReceivedPayload) -> CoreOutcome:
        async with self.state.sessions() as session:
            message = _new_message(received, self.receivers)
            out = Outcome(environment=message.environment, received_at=message.received_at)
            out.event_at(received.received_at, "received", size=len(received.payload))
            intake = _Intake(
                received=received,
                session=session,
                message=message,
                outcome=out,
                environment=message.environment or "pilot",
            )
            try:
                result = await self._steps(intake)
            except _Finished as finished:
                result = finished.outcome
            await session.commit()  # ends the reads' transaction: the writes start anew
            out.completed_at = utc_now()
            message_id = await self._write(session, message, out)
        log.info("intake.completed", message_id=message_id, status=out.status)
        return replace(result, message_id=message_id)

    async def _steps(self, intake: _Intake) -> CoreOutcome:
        if intake.received.to_her_id not in self.receivers:
            raise _Finished(_refuse(intake.outcome, [_unknown_receiver(intake.received)]))
        at = await self._registered_party(intake)
        opened = await self._open(at)
        try:
            await self._claim(at)
            findings, business, history = await self._check_business(at, opened)
        finally:
            opened.close()
        return self._answer(at, findings, business, history)

    # --- the steps ------------------------------------------------------------------------

    async def _registered_party(self, intake: _Intake) -> _FromParty:
        """The registered sender the transport names, or a refusal."""
        her = intake.received.from_her_id
        number = her_number(her)
        party = None
        if number is not None:
            party = await party_repo.get_party(intake.session, number)
        # --- registries --- (issue 23: a sender NHN's registries know; see app/registries)
        found = await registries.registered_sender(
            self.state, intake.session, number, party, intake.received.to_her_id
        )
        if found.finding is not None:
            raise _Finished(_refuse(intake.outcome, [found.finding], transient=True))
        party = found.party
        # --- registries ---
        if party is None:
            unknown = Finding(
                ebxml_rules.NOT_AUTHENTICATED,
                "transport: from",
                f"Avsender HER-id {her or '(mangler)'} er ikke registrert som avsender til KPR.",
            )
            raise _Finished(_refuse(intake.outcome, [unknown]))
        return _FromParty(
            received=intake.received,
            session=intake.session,
            message=intake.message,
            outcome=intake.outcome,
            environment=intake.environment,
            party=party,
        )

    async def _open(self, at: _FromParty) -> stages.Opened:
        """Decryption and the business signature (the authentication: the signer must be one
        of the party's signing certificates)."""
        s, party = self.settings, at.party
        trust = PartyTrust(orgnr=party.orgnr, signing_certs=certs(party, CertificateUsage.SIGNING))
        store = revocation.trust_store(self.state, self.keys)
        opened = await anyio.to_thread.run_sync(
            lambda: stages.open_payload_bytes(
                at.received.payload,
                party=trust,
                trust=store,
                keys=self.keys.decryption,
                now=at.received.received_at,
                max_inflated=s.max_payload_bytes,
                max_elements=s.max_payload_elements,
            )
        )
        for kind, detail in opened.events:
            at.outcome.event(kind, **detail)
        if opened.transient:
            revocation.request_refresh(self.state, opened)
        if not opened.authenticated:
            opened.close()
            found = (*opened.transport_findings, *opened.business_findings)
            raise _Finished(_refuse(at.outcome, found, transient=opened.transient))
        at.outcome.sender_party_id = party.id
        at.outcome.raw = at.received.payload
        at.outcome.payload_bytes = opened.size
        return opened

    async def _claim(self, at: _FromParty) -> None:
        """The dedup claim (sender, transport message id), made in the write transaction; a
        payload seen before gets its stored AppRec (`_Finished`)."""
        from_id, msg_id = at.message.from_party_id, at.received.transport_message_id
        assert from_id is not None
        sha = hashlib.sha256(at.received.payload).hexdigest()
        claim = await repo.find_claim(at.session, from_id, msg_id)
        if claim is None:
            key = ClaimKey(from_party_id=from_id, ebms_message_id=msg_id)
            at.outcome.claim = Claim(key=key, content_sha256=sha)
            return
        if claim.content_sha256 != sha:
            finding = Finding(
                ebxml_rules.DUPLICATE_INCONSISTENT,
                "transport: message id",
                f"Meldings-id '{msg_id[:100]}' er allerede brukt av en annen melding med annet "
                "innhold. Gi hver ny melding en ny id.",
            )
            raise _Finished(_refuse(at.outcome, [finding], condition=DUPLICATE_INCONSISTENT))
        raise _Finished(await _stored_reply(at, claim.message_id))

    async def _check_business(
        self, at: _FromParty, opened: stages.Opened
    ) -> tuple[list[Finding], stages.Business | None, IplosHistory | None]:
        """MsgHead, an identical resend, then the content against the history of the
        receiver's environment."""
        findings = list(opened.business_findings)
        content = opened.content
        if content is None or findings:
            return findings, None, None
        read = await anyio.to_thread.run_sync(lambda: self._read_head(at, content))
        out = at.outcome
        out.msghead_sha256 = await anyio.to_thread.run_sync(lambda: stages.sha256_of(content))
        reused, rejected_at = await self._msgid_reused(at, read)
        history, context = await self._content_context(at, read)
        if read.fmt:
            read = replace(read, keys=HistoryKeys())
        context = replace(context, corrects_rejected_at=rejected_at)
        business = await anyio.to_thread.run_sync(lambda: stages.check_content(read, context))
        findings.extend(business.findings)
        if reused and business.msghead is not None:
            findings.append(msgid_duplicate(business.msghead))
        record_business(out, at.party, business, findings)
        out.event("validated", findings=len(findings))
        return findings, business, history

    def _read_head(self, at: _FromParty, content: IO[bytes]) -> stages.BusinessHead:
        return stages.read_business(
            content,
            now=at.received.received_at,
            ebxml_from_her=at.received.from_her_id,
            ebxml_to_her=at.received.to_her_id,
            party_her=str(at.party.her_id),
            our_her_ids=list(self.receivers),
            skew=timedelta(seconds=self.settings.gen_date_skew_seconds),
        )

    async def _msgid_reused(
        self, at: _FromParty, read: stages.BusinessHead
    ) -> tuple[bool, datetime | None]:
        """An identical resend of a MsgHead gets its stored AppRec (`_Finished`); True when
        the MsgId was used before for other content that was not rejected (E10)."""
        msg_id = read.msghead.msg_id if read.msghead is not None else None
        if not msg_id:
            return False, None
        earlier = await repo.msghead_id_uses(
            at.session, at.party.id, msg_id, environment=at.environment
        )
        answered = [e for e in earlier if e.status != MessageStatus.AVVIST]
        sha = at.outcome.msghead_sha256
        resend = next((e for e in answered if e.msghead_sha256 == sha), None)
        if resend is not None:
            at.outcome.msghead_msg_id = repo.fit(msg_id, repo.MSGHEAD_MSG_ID_WIDTH)
            raise _Finished(await _stored_reply(at, resend.message_id))
        rejected = [e.received_at for e in earlier if e.status == MessageStatus.AVVIST]
        return bool(answered), min(rejected, default=None)

    async def _content_context(
        self, at: _FromParty, read: stages.BusinessHead
    ) -> tuple[IplosHistory, ContentContext]:
        """The history of the party's municipalities and what the content is judged by."""
        session, environment = at.session, at.environment
        kommuner = [k.kommune_nr for k in at.party.kommuner]
        history = IplosHistory()
        calendar = reporting_calendar(self.settings.reporting_calendar)
        if read.fmt:
            at.outcome.history_read = await history_repo.read_versions(
                session, environment, kommuner, lock=False
            )
            history = await history_repo.load_history(
                session, environment, kommuner, read.keys, self.keys.register
            )
            granted = await deadline_repo.extensions(session, kommuner=kommuner)
            calendar = replace(calendar, extensions=granted)
        context = ContentContext(
            now=at.received.received_at,
            allowed_kommuner=renumbered_alike(k.kommune_nr for k in at.party.kommuner),
            allow_synthetic=environment != ReceiverEnvironment.PRODUCTION.value,
            history=history,
            calendar=calendar,
            environment=environment,
            kommune_years=await kommune_repo.imported_years(session),
        )
        return history, context

    def _answer(
        self,
        at: _FromParty,
        findings: list[Finding],
        business: stages.Business | None,
        history: IplosHistory | None,
    ) -> CoreOutcome:
        """The AppRec for the findings (the transport signs and encrypts it as it sends it),
        and what an accepted message establishes."""
        party, out = at.party, at.outcome
        apprec_id = str(uuid.uuid4())
        apprec = self._build_apprec(at, findings, business, apprec_id)
        status = receipt_outcome(findings).status
        out.status = MessageStatus.of_apprec(status)
        out.findings.extend(findings)
        out.findings_kommuner = frozenset(k.kommune_nr for k in party.kommuner)
        out.receipt = ReceiptRecord(
            kind=ReceiptKind.APPREC,
            content_type=APPREC_CONTENT_TYPE,
            body=apprec,
            reply_ebms_message_id=None,
            apprec_xml=apprec,
            apprec_id=apprec_id,
            apprec_status=status.value,
            at=utc_now(),
        )
        out.event("receipt_built", reply="apprec", status=status.value)
        keep_history(
            out, environment=at.environment, business=business, history=history, status=status
        )
        out.mails_for = functools.partial(
            compose_mails,
            self.settings,
            party=party,
            message=at.message,
            out=out,
            business=business,
            findings=findings,
            status=status,
        )
        return CoreOutcome(
            kind=OutcomeKind.ANSWERED,
            message_id=None,
            apprec=apprec,
            apprec_status=status,
            findings=tuple(findings),
        )

    def _build_apprec(
        self,
        at: _FromParty,
        findings: list[Finding],
        business: stages.Business | None,
        apprec_id: str,
    ) -> bytes:
        """The AppRec XML (unsigned: the transport protects it as it sends it)."""
        msghead = business.msghead if business else None
        fallback = AppRecParty(name=at.party.name, her_id=str(at.party.her_id))
        version = (
            AppRecVersion.V1_0 if self.settings.apprec_version == "1.0" else AppRecVersion.V1_1
        )
        return build_receipt(
            findings,
            sender=AppRecParty(name=KPR_NAME, her_id=at.received.to_her_id),
            receiver=receiver_from_msghead(msghead, fallback=fallback),
            original=original_from_msghead(
                msghead,
                received_at=at.received.received_at,
                fallback_id=at.received.transport_message_id,
            ),
            now=utc_now(),
            apprec_id=apprec_id,
            version=version,
            software_version=__version__,
        )

    # --- the one write transaction ---------------------------------------------------------

    def _writer(self) -> contextlib.AbstractAsyncContextManager[object]:
        lock = self.state.sqlite_writer
        return lock if lock is not None else contextlib.nullcontext()

    async def _write(self, session: AsyncSession, message: Message, out: Outcome) -> int:
        """The message row, the races (the dedup claim, the history's versions), then all the
        outcome holds; one commit. A race lost: rolled back, `Conflict`."""
        async with self._writer():
            out.message_id = message_id = await repo.add_message(session, message)
            await decide_races(session, out)
            if out.mails_for is not None:
                out.mails.extend(out.mails_for(message_id))
            await repo.store_outcome(session, out, self.windows, self.keys.register)
            await session.commit()
        return message_id


# --- helpers of the steps ----------------------------------------------------------------


def _refuse(
    out: Outcome,
    findings: tuple[Finding, ...] | list[Finding],
    *,
    transient: bool = False,
    condition: str = NOT_AUTHENTICATED,
) -> CoreOutcome:
    """A refusal before the business layers; the findings are stored for the operator, the
    sender is told only the condition (an outsider learns nothing of the registry)."""
    out.status = MessageStatus.MESSAGE_ERROR
    out.findings.extend(findings)
    out.event("refused", rules=sorted({f.rule.id for f in findings}))
    if transient:
        return CoreOutcome(
            kind=OutcomeKind.TEMPORARY,
            message_id=None,
            findings=tuple(findings),
            condition=DELIVERY_FAILURE,
            reason="Meldingen kunne ikke behandles nå. Send den på nytt om litt.",
        )
    return CoreOutcome(
        kind=OutcomeKind.REFUSED,
        message_id=None,
        findings=tuple(findings),
        condition=condition,
        reason="Kontroller avsenders HER-id, signatur og sertifikat.",
    )


def _unknown_receiver(received: ReceivedPayload) -> Finding:
    return Finding(
        ebxml_rules.NOT_AUTHENTICATED,
        "transport: to",
        f"Mottaker HER-id {received.to_her_id or '(mangler)'} er ikke KPR.",
    )


async def _stored_reply(at: _FromParty, original: int) -> CoreOutcome:
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


def _new_message(received: ReceivedPayload, receivers: dict[str, str]) -> Message:
    """The payload's row; the whole payload is kept once the sender is authenticated."""
    audit = received.audit
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
        transport=received.transport,  # in the same commit as the outcome: one audit for all
    )
    repo.record_header(
        message,
        ebms_message_id=received.transport_message_id,
        cpa_id=received.cpa_id,
        from_her=received.from_her_id,
        to_her=received.to_her_id,
        service=received.transport,
    )
    message.environment = receivers.get(received.to_her_id or "", "pilot")
    return message
