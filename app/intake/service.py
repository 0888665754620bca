"""The intake service: the one place that orders the steps of receiving a message, talks to
the repositories and commits, once, before the reply leaves.

`_receive` reads the transport (MIME, SOAP, ebMS); `_process` then runs its steps: registered
party -> authenticate (signatures, certificates, decryption) -> admit (registry checks,
signals, the dedup claim) -> MsgHead and content -> AppRec and reply -> history and email. The
steps share one per-request context (`_Request`), only read the database, and record what they
decide in its `Outcome` instead of writing as they go; a step that ends the processing early
raises `_Stop` with its reply. `_write` then stores the request's row and the outcome in one
transaction and commits, before the reply leaves: an Acknowledgment promises the message is
stored. What the steps read and the write needs still true (the dedup claim, the history's
versions) is decided in that transaction; a race lost there checks the message again. A
duplicate gets the stored reply byte for byte. Nothing here raises to the client: an
unexpected error is logged, the request is stored as FAILED and answered with a MessageError.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import IO

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from app import __version__
from app.apprec.model import KPR_NAME, AppRecStatus, AppRecVersion
from app.content.calendar import ReportingCalendar
from app.content.model import ContentContext, HistoryKeys, IplosHistory
from app.core.findings import Finding
from app.deadlines import repository as deadline_repo
from app.ebxml import rules as ebxml_rules
from app.ebxml.envelope import (
    EbmsHeader,
    first_her_id,
)
from app.intake import history as history_repo
from app.intake import repository as repo
from app.intake import revocation, stages
from app.intake import rules as intake_rules
from app.intake.ebms.header import (
    fill_transport,
    is_signal,
    record_arrival,
    registry_checks,
    signal_refused,
)
from app.intake.ebms.replies import EbmsReplies, apprec_receipt, new_message_id
from app.intake.ebms.request import IntakeRequest, Reply, loaded, new_message
from app.intake.outcome import Claim, ClaimKey, Outcome
from app.intake.shared import (
    Conflict,
    certs,
    compose_mails,
    decide_claim,
    decide_races,
    first_cert,
    her_number,
    keep_history,
    record_business,
    reporting_calendar,
    utc_now,
)
from app.keyring import Keyring
from app.kommuner import repository as kommune_repo
from app.kommuner.years import renumbered_alike
from app.models import (
    Message,
    Party,
)
from app.msghead.checks import msgid_duplicate
from app.parties import repository as party_repo
from app.platform.logs import error_location, get_logger
from app.platform.settings import ReceiverEnvironment
from app.query import totals
from app.registries import lookup as registries  # --- registries ---
from app.security.certificates import PartyTrust
from app.state import AppState
from app.statuses import CertificateUsage, MessageStatus

log = get_logger(__name__)

# A race lost in the write transaction is checked again; so many in a row is a temporary
# failure (the sender sends it again later).
_ATTEMPTS = 3
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Arrival:
    """A request whose transport was read: what every step reads, and the outcome the steps
    fill in (written by `repo.store_outcome` at the one commit)."""

    session: AsyncSession
    message: Message  # the request's row as stored on arrival
    transport: stages.Transport
    header: EbmsHeader
    body: bytes
    outcome: Outcome
    exclusive: bool  # after a race lost: claim and lock as the steps read (`_attempt`)

    def from_party(self, party: Party) -> _Request:
        return _Request(
            session=self.session,
            message=self.message,
            transport=self.transport,
            header=self.header,
            body=self.body,
            outcome=self.outcome,
            exclusive=self.exclusive,
            party=party,
        )

    def claim_key(self) -> ClaimKey | None:
        """The dedup key this request claims (or would), when the header names one."""
        m = self.message
        if not (m.ebms_message_id and m.from_party_id):
            return None
        return ClaimKey(from_party_id=m.from_party_id, ebms_message_id=m.ebms_message_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Request(_Arrival):
    """A request from a registered party: the context of the steps after `_registered_party`."""

    party: Party


@dataclass(frozen=True, slots=True, kw_only=True)
class _Checked:
    """The business layers' outcome: what the AppRec answers and what is stored."""

    business: stages.Business | None
    findings: list[Finding]
    environment: str
    history: IplosHistory | None  # loaded for the content check; None when none ran


class _Stop(Exception):
    """Processing ends early with this reply (already recorded in the outcome)."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


class IntakeService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.settings = state.settings
        self.keys: Keyring = state.keyring
        self.receivers = {str(k): v.value for k, v in self.settings.receivers.items()}
        # only configured years are judged; parsed once per setting, not per message
        self.calendar: ReportingCalendar = reporting_calendar(self.settings.reporting_calendar)
        self.windows = totals.windows_for(self.settings.reporting_calendar)
        self.replies = EbmsReplies(state, self.windows)

    async def refuse_too_large(self, request: IntakeRequest, size: int) -> str:
        """A body over the cap, stored as refused; the 413's detail (`EbmsReplies`)."""
        return await self.replies.refuse_too_large(request, size)

    # --- entry points -------------------------------------------------------------------

    async def receive(self, request: IntakeRequest) -> Reply:
        started = datetime.now(UTC)
        try:
            async with self.state.intake_slots:
                request = await loaded(request)
                reply, status, env = await self._receive(request)
        except Exception as exc:
            # A bug or an outage: keep the request, answer with a MessageError, never a 500.
            log.error(
                "intake.internal_error",
                error_type=type(exc).__name__,
                where=error_location(exc),
            )
            reply, status, env = await self.replies.store_failure(request), "FAILED", "unknown"
        self.state.metrics.messages.labels(status, env).inc()
        self.state.metrics.intake_seconds.observe((datetime.now(UTC) - started).total_seconds())
        return reply

    # --- the pipeline -------------------------------------------------------------------

    async def _receive(self, request: IntakeRequest) -> tuple[Reply, str, str]:
        """Read the transport, then check the message and write what it decided; a race lost
        in the write transaction (`Conflict`) is checked again from the start."""
        transport, body_sha256 = await anyio.to_thread.run_sync(lambda: self._read(request))
        env = transport.receiver.environment if transport.receiver else "unknown"
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                # after a race lost, the message is checked holding what it reads
                out, reply = await self._attempt(
                    request, transport, body_sha256, exclusive=attempt > 1
                )
            except Conflict as lost:
                log.info("intake.checked_again", reason=lost.reason, attempt=attempt)
                continue
            for line in out.log_lines:
                log.log(_LEVELS[line.level], line.event, message_id=out.message_id, **line.fields)
            log.info(
                "intake.completed", message_id=out.message_id, status=out.status, environment=env
            )
            return reply, out.status, env
        # answered as an internal error: stored whole, and the sender sends it again later
        raise RuntimeError(f"the write lost its race {_ATTEMPTS} times in a row")

    async def _attempt(
        self,
        request: IntakeRequest,
        transport: stages.Transport,
        body_sha256: str,
        *,
        exclusive: bool,
    ) -> tuple[Outcome, Reply]:
        """The steps, then the one write transaction. The steps only read the database, unless
        `exclusive` (after a race lost): then the transaction starts with the message row
        (on SQLite: the database's write lock, and this process's writer lock is held
        throughout), the claim is made at once and the history's state rows are locked as
        they are read, so a municipality's busy stream of messages is checked one by one."""
        async with (
            self._writer() if exclusive else contextlib.nullcontext(),
            self.state.sessions() as session,
        ):
            message = new_message(request, size=len(request.body), sha256=body_sha256)
            fill_transport(message, transport)
            out = Outcome(environment=message.environment, received_at=message.received_at)
            if exclusive:
                out.message_id = await repo.add_message(session, message)
            record_arrival(out, request, transport)
            try:
                reply = await self._after_transport(
                    session, message, transport, request.body, out, exclusive=exclusive
                )
            except _Stop as stop:
                reply = stop.reply
            if not exclusive:
                await session.commit()  # ends the reads' transaction: the writes start anew
            out.completed_at = utc_now()
            await self._write(session, message, out, locked=exclusive)
        return out, reply

    def _writer(self) -> contextlib.AbstractAsyncContextManager[object]:
        """This process's SQLite writers queue here (SQLite has one writer); nothing on
        PostgreSQL."""
        lock = self.state.sqlite_writer
        return lock if lock is not None else contextlib.nullcontext()

    async def _write(
        self, session: AsyncSession, message: Message, out: Outcome, *, locked: bool
    ) -> None:
        """The one write transaction and its commit (the reply promises the message is
        stored): the message row, the races (`shared.decide_races`), then all the outcome holds.
        The writer lock is taken only here (`locked`: held since the attempt began), so a
        large message's checks hold up no other message."""
        async with contextlib.nullcontext() if locked else self._writer():
            if out.message_id is None:
                out.message_id = await repo.add_message(session, message)
            message_id = out.message_id
            await decide_races(session, out)
            if out.mails_for is not None:
                out.mails.extend(out.mails_for(message_id))
            await repo.store_outcome(session, out, self.windows, self.keys.register)
            await session.commit()

    def _read(self, request: IntakeRequest) -> tuple[stages.Transport, str]:
        """MIME, SOAP and the ebMS header, and the body's hash (in a worker thread: 50 MB of
        SHA-256 must not run on the event loop)."""
        s = self.settings
        transport = stages.read_transport(
            request.body,
            request.content_type,
            receivers=self.receivers,
            now=request.received_at,
            max_parts=s.max_mime_parts,
            max_header_bytes=s.max_header_bytes,
        )
        return transport, request.body_sha256 or hashlib.sha256(request.body).hexdigest()

    async def _after_transport(
        self,
        session: AsyncSession,
        message: Message,
        transport: stages.Transport,
        body: bytes,
        out: Outcome,
        *,
        exclusive: bool,
    ) -> Reply:
        """A transport that could not be read is answered here; the rest is `_process`."""
        header = transport.header
        if header is not None and transport.findings and is_signal(header):
            return signal_refused(out, transport.findings)
        if transport.findings or header is None:
            return await self.replies.message_error(out, transport, transport.findings, sign=False)
        arrival = _Arrival(
            session=session,
            message=message,
            transport=transport,
            header=header,
            body=body,
            outcome=out,
            exclusive=exclusive,
        )
        return await self._process(arrival)

    async def _process(self, arrival: _Arrival) -> Reply:
        """The steps after the transport was read. Each step that ends the processing early
        raises `_Stop` with the reply it recorded."""
        req = await self._registered_party(arrival)
        opened = await self._authenticate(req)
        try:
            await self._admit(req, opened)
            checked = await self._check_business(req, opened)
        finally:
            opened.close()  # the spooled payload: memory or a temporary file, gone here
        receipt = await self._reply_with_apprec(req, checked)
        keep_history(
            req.outcome,
            environment=checked.environment,
            business=checked.business,
            history=checked.history,
            status=receipt.status,
        )
        self._queue_notification(req, checked, receipt.status)
        return Reply(200, receipt.reply.body, receipt.reply.content_type)

    # --- the steps of `_process` -------------------------------------------------------------

    async def _registered_party(self, at: _Arrival) -> _Request:
        """The registered sender named by eb:From, or a generic refusal."""
        number = her_number(at.message.from_party_id)
        party = await party_repo.get_party(at.session, number) if number is not None else None
        # --- registries --- (issue 23: a sender NHN's registries know; see app/registries)
        found = await registries.registered_sender(
            self.state, at.session, number, party, at.message.to_party_id
        )
        if found.finding is not None:
            raise _Stop(await self._refuse(at, [found.finding], transient=True))
        party = found.party
        # --- registries ---
        if party is not None:
            return at.from_party(party)
        her = first_her_id(at.header.from_party.party_ids)
        unknown = Finding(
            ebxml_rules.FROM_UNKNOWN,
            "eb:MessageHeader/eb:From/eb:PartyId",
            f"Avsender HER-id {her or '(mangler)'} er ikke registrert som avsender til KPR.",
        )
        raise _Stop(await self._refuse(at, [unknown]))

    async def _authenticate(self, req: _Request) -> stages.Opened:
        """Signatures, certificates and decryption; from here the whole request is kept, and
        answers are specific and signed by KPR."""
        opened = await self._open(req)
        # --- registries --- (issue 23: a certificate that fails: one forced refresh first)
        if not (opened.authenticated or opened.transient) and await registries.refreshed_sender(
            self.state, req.session, req.party.her_id, req.message.to_party_id
        ):
            opened.close()
            opened = await self._open(req)  # req.party is the refreshed row
        # --- registries ---
        if opened.transient:
            # No waiting here (the request holds an intake slot): the refresher fetches in
            # the background and the sender's MSH resends after the DeliveryFailure.
            revocation.request_refresh(self.state, opened)
        for kind, detail in opened.events:
            req.outcome.event(kind, **detail)
        if not opened.authenticated:
            opened.close()
            raise _Stop(
                await self._refuse(req, opened.transport_findings, transient=opened.transient)
            )
        req.outcome.sender_party_id = req.party.id
        req.outcome.raw = req.body
        return opened

    async def _open(self, req: _Request) -> stages.Opened:
        """`stages.open_message` with the party's certificates, in a worker thread."""
        s, party, header = self.settings, req.party, req.header
        cpa = next((c for c in party.cpas if c.cpa_id == header.cpa_id), None)
        # Signatures are always required; plaintext_allowed only lets a party send the payload
        # unencrypted, and a CPA that demands encryption always wins.
        requires_encryption = not party.plaintext_allowed or (
            cpa is not None and cpa.requires_encryption
        )
        trust = PartyTrust(orgnr=party.orgnr, signing_certs=certs(party, CertificateUsage.SIGNING))
        store = revocation.trust_store(self.state, self.keys)
        return await anyio.to_thread.run_sync(
            lambda: stages.open_message(
                req.transport,
                party=trust,
                trust=store,
                keys=self.keys.decryption,
                now=req.message.received_at,
                requires_signing=True,
                requires_encryption=requires_encryption,
                max_inflated=s.max_payload_bytes,
                max_elements=s.max_payload_elements,
                payload=not header.is_signal,
            )
        )

    async def _admit(self, req: _Request, opened: stages.Opened) -> None:
        """The registry's checks, signals, transport faults after authentication, and the
        dedup claim (sender, MessageId). Earlier refusals are not claimed, so a corrected
        resend with the same MessageId is processed, and nobody can take a party's MessageId
        with a forged From."""
        out, transport = req.outcome, req.transport
        findings = await registry_checks(req.session, req.header, req.party)
        if findings:
            raise _Stop(await self.replies.message_error(out, transport, findings))
        if req.header.is_signal:
            raise _Stop(await self.replies.signal(out, transport, req.header))
        if opened.transport_findings:
            release = req.claim_key() if opened.transient else None
            raise _Stop(
                await self.replies.message_error(
                    out, transport, opened.transport_findings, release=release
                )
            )
        await self._claim(req)
        out.payload_bytes = opened.size if opened.content is not None else None

    async def _check_business(self, req: _Request, opened: stages.Opened) -> _Checked:
        """MsgHead, an identical resend or a reused MsgId, then the content against the
        history of the address's environment."""
        transport, party, out = req.transport, req.party, req.outcome
        environment = transport.receiver.environment if transport.receiver else "pilot"
        findings = list(opened.business_findings)
        if opened.content is None or findings:
            return _Checked(business=None, findings=findings, environment=environment, history=None)
        content = opened.content
        read = await self._read_head(req, content)
        out.msghead_sha256 = await anyio.to_thread.run_sync(lambda: stages.sha256_of(content))
        msgid_reused, rejected_at = await self._msgid_reused(req, read)
        history = IplosHistory()
        calendar = self.calendar
        if read.fmt:
            kommuner = [k.kommune_nr for k in party.kommuner]
            # the versions before the history: a change in between is seen at the write
            out.history_read = await history_repo.read_versions(
                req.session, environment, kommuner, lock=req.exclusive
            )
            history = await history_repo.load_history(
                req.session, environment, kommuner, read.keys, self.keys.register
            )
            read = replace(read, keys=HistoryKeys())  # 100 000 notifications: some 40 MB
            granted = await deadline_repo.extensions(req.session, kommuner=kommuner)
            calendar = replace(calendar, extensions=granted)
        context = replace(
            self._content_context(req, environment, history, calendar),
            corrects_rejected_at=rejected_at,
            kommune_years=await kommune_repo.imported_years(req.session),
        )
        business = await anyio.to_thread.run_sync(lambda: stages.check_content(read, context))
        findings.extend(business.findings)
        if msgid_reused and business.msghead is not None:
            findings.append(msgid_duplicate(business.msghead))
        record_business(req.outcome, req.party, business, findings)
        out.event("validated", findings=len(findings))
        return _Checked(
            business=business, findings=findings, environment=environment, history=history
        )

    async def _read_head(self, req: _Request, content: IO[bytes]) -> stages.BusinessHead:
        """MsgHead read and checked; without a CPA the Action must name it (DOMAIN 2.1)."""
        message, party = req.message, req.party
        read = await anyio.to_thread.run_sync(
            lambda: stages.read_business(
                content,
                now=message.received_at,
                ebxml_from_her=message.from_party_id,
                ebxml_to_her=message.to_party_id,
                party_her=str(party.her_id),
                our_her_ids=list(self.receivers),
                skew=timedelta(seconds=self.settings.gen_date_skew_seconds),
            )
        )
        type_v = read.msghead.type_v if read.msghead is not None else None
        if not party.cpas and type_v and req.header.action != type_v:
            wrong_action = Finding(
                ebxml_rules.SERVICE_NOT_ALLOWED,
                "eb:MessageHeader/eb:Action",
                f"Action '{req.header.action}' stemmer ikke med MsgInfo/Type '{type_v}'. Uten "
                "avtalt CPA skal Action være lik MsgInfo/Type.",
            )
            raise _Stop(
                await self.replies.message_error(req.outcome, req.transport, [wrong_action])
            )
        return read

    async def _msgid_reused(
        self, req: _Request, read: stages.BusinessHead
    ) -> tuple[bool, datetime | None]:
        """An identical resend is answered here with its stored AppRec; True when the MsgId
        was used before for other content that was not rejected (E10). Beside it, when the
        MsgId's first use was rejected: then (this being its corrected message) its originals
        are judged as corrections for timeliness (issue 21)."""
        msg_id = read.msghead.msg_id if read.msghead is not None else None
        if not msg_id:
            return False, None
        resend, reused, rejected_at = await self._earlier_use(req, msg_id)
        if resend is not None:
            raise _Stop(await self._resend_apprec(req, msg_id, resend))
        return reused, rejected_at

    def _content_context(
        self,
        req: _Request,
        environment: str,
        history: IplosHistory,
        calendar: ReportingCalendar,
    ) -> ContentContext:
        return ContentContext(
            now=req.message.received_at,
            # a municipality renumbered one to one (2024) may report under either number
            allowed_kommuner=renumbered_alike(k.kommune_nr for k in req.party.kommuner),
            allow_synthetic=environment != ReceiverEnvironment.PRODUCTION.value,
            history=history,
            calendar=calendar,
            environment=environment,
        )

    async def _earlier_use(
        self, req: _Request, msg_id: str
    ) -> tuple[repo.EarlierUse | None, bool, datetime | None]:
        """What earlier messages with this MsgId mean (DOMAIN 2.1): an identical one that was
        not rejected makes this a resend (the stored AppRec is sent again); a different one
        that was not rejected makes the MsgId reused (E10); a rejected one frees the MsgId
        for the corrected message."""
        out = req.outcome
        receiver = req.transport.receiver
        earlier = await repo.msghead_id_uses(
            req.session,
            req.party.id,
            msg_id,
            environment=receiver.environment if receiver is not None else None,
        )
        answered = [e for e in earlier if e.status != MessageStatus.AVVIST]
        resend = next((e for e in answered if e.msghead_sha256 == out.msghead_sha256), None)
        rejected = [e.received_at for e in earlier if e.status == MessageStatus.AVVIST]
        return resend, resend is None and bool(answered), min(rejected, default=None)

    async def _resend_apprec(self, req: _Request, msg_id: str, original: repo.EarlierUse) -> Reply:
        """An identical business document sent again (a lost reply): its stored AppRec, in a
        new reply to this ebXML message. Nothing is stored or emailed a second time."""
        stored = await repo.stored_apprec(req.session, original.message_id)
        if stored is None or stored.apprec_xml is None or stored.apprec_status is None:
            raise RuntimeError(f"message {original.message_id} has no stored AppRec")
        apprec_xml, apprec_id = stored.apprec_xml, stored.apprec_id or ""
        status = AppRecStatus(stored.apprec_status)
        encrypt_to = first_cert(req.party, CertificateUsage.ENCRYPTION)
        built = await anyio.to_thread.run_sync(
            lambda: stages.wrap_apprec(
                apprec_xml,
                apprec_id=apprec_id,
                status=status,
                header=req.header,
                now=utc_now(),
                reply_message_id=new_message_id(),
                encrypt_to=encrypt_to,
                signer=self.keys.signing,
            )
        )
        out = req.outcome
        out.status = MessageStatus.DUPLICATE
        out.msghead_msg_id = repo.fit(msg_id, repo.MSGHEAD_MSG_ID_WIDTH)
        out.receipt = apprec_receipt(built)
        out.event("msghead_resend", original=original.message_id)
        out.log("info", "intake.msghead_resend", original=original.message_id)
        return Reply(200, built.reply.body, built.reply.content_type)

    async def _refuse(
        self, at: _Arrival, findings: Sequence[Finding], *, transient: bool = False
    ) -> Reply:
        """A refusal before the sender is authenticated (`EbmsReplies.refuse`)."""
        return await self.replies.refuse(
            at.outcome,
            at.transport,
            at.header,
            findings,
            reference=at.message.request_id,
            transient=transient,
            release=at.claim_key() if transient else None,
        )

    # --- replies --------------------------------------------------------------------------

    async def _reply_with_apprec(self, req: _Request, checked: _Checked) -> stages.BuiltReceipt:
        """The AppRec for the findings, signed and encrypted to the sender, in a signed reply."""
        party, business = req.party, checked.business
        encrypt_to = first_cert(party, CertificateUsage.ENCRYPTION)
        our_her = req.message.to_party_id or next(iter(self.receivers))
        version = (
            AppRecVersion.V1_0 if self.settings.apprec_version == "1.0" else AppRecVersion.V1_1
        )
        built = await anyio.to_thread.run_sync(
            lambda: stages.build_apprec_reply(
                checked.findings,
                header=req.header,
                msghead=business.msghead if business else None,
                our_her=our_her,
                our_name=KPR_NAME,
                sender_name=party.name,
                now=utc_now(),
                apprec_id=str(uuid.uuid4()),
                reply_message_id=new_message_id(),
                version=version,
                software_version=__version__,
                encrypt_to=encrypt_to,
                signer=self.keys.signing,
            )
        )
        out = req.outcome
        out.status = MessageStatus.of_apprec(built.status)
        out.findings.extend(checked.findings)
        out.findings_kommuner = frozenset(k.kommune_nr for k in party.kommuner)
        out.receipt = apprec_receipt(built)
        out.event(
            "receipt_built",
            reply="apprec",
            status=built.status.value,
            encrypted=encrypt_to is not None,
            signed=self.keys.signing is not None,
        )
        return built

    async def _claim(self, req: _Request) -> None:
        """The dedup claim (sender, MessageId), made in the write transaction (`Outcome.claim`;
        its primary key decides a race). Otherwise this is a resend and `_Stop` carries the
        stored reply byte for byte, or `Inconsistent` when the content differs."""
        session, header, transport = req.session, req.header, req.transport
        from_id = req.message.from_party_id
        assert from_id is not None
        claim = await repo.find_claim(session, from_id, header.message_id)
        if claim is None:
            key = ClaimKey(from_party_id=from_id, ebms_message_id=header.message_id)
            req.outcome.claim = Claim(key=key, content_sha256=transport.content_sha256)
            if not req.exclusive:
                return
            try:  # claimed at once, before the history's locks: one order for all writers
                await decide_claim(session, req.outcome)
                return
            except Conflict:  # another copy claimed it first: this one is its duplicate
                req.outcome.claim = None
                claim = await repo.find_claim(session, from_id, header.message_id)
            if claim is None:  # claimed and given up meanwhile: the sender tries again
                raise _Stop(await self._temporary_failure(req))
        if claim.content_sha256 != transport.content_sha256:
            finding = Finding(
                ebxml_rules.DUPLICATE_INCONSISTENT,
                "eb:MessageHeader/eb:MessageData/eb:MessageId",
                f"MessageId '{header.message_id}' er allerede brukt av en annen melding "
                "med annet innhold. Gi hver ny melding en ny MessageId.",
            )
            raise _Stop(await self.replies.message_error(req.outcome, transport, [finding]))
        stored = await repo.receipt_for(session, claim.message_id)
        if stored is None:  # cannot happen: claim and receipt commit together
            raise _Stop(await self._temporary_failure(req))
        req.outcome.status = MessageStatus.DUPLICATE
        req.outcome.event("duplicate", original=claim.message_id)
        req.outcome.log("info", "intake.duplicate", original=claim.message_id)
        raise _Stop(Reply(200, stored.body, stored.content_type))

    async def _temporary_failure(self, at: _Arrival) -> Reply:
        finding = Finding(
            intake_rules.INTERNAL_ERROR,
            "eb:MessageHeader/eb:MessageData/eb:MessageId",
            "Meldingen kunne ikke behandles nå. Send den på nytt om litt.",
        )
        return await self.replies.message_error(
            at.outcome, at.transport, [finding], release=at.claim_key()
        )

    # --- notification ---------------------------------------------------------------------

    def _queue_notification(self, req: _Request, checked: _Checked, status: AppRecStatus) -> None:
        """Queue the email to innsendingsansvarlig (composed in the write transaction, which
        gives the message its id)."""
        req.outcome.mails_for = functools.partial(
            compose_mails,
            self.settings,
            party=req.party,
            message=req.message,
            out=req.outcome,
            business=checked.business,
            findings=checked.findings,
            status=status,
        )
