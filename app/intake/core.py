"""The transport-independent intake core: one entry point, `IntakeCore.process`, that takes
a `ReceivedPayload` (whatever transport brought it) and the transport's binding
(`app/intake/binding.py`) and returns a `CoreOutcome`. Every transport runs through it: ebXML
over HTTP and SMTP (`app/intake/ebms/binding.py`) and AMQP (`app/intake/payload_binding.py`,
the default).

The steps, in order: what the transport refuses on arrival -> the registered party
(`_registered_party`) -> open the payload (`_authenticate`: signatures, certificates,
decryption) -> the transport's checks after authentication and the dedup claim (`_admit`) ->
MsgHead and content (`_check_business`) -> the AppRec (`_answer`) -> history, register store
and email -> the one commit (`_write`). The steps only read the database and record what they
decide in the `Outcome`; a step that ends the processing early raises `Finished` with the
outcome it recorded: the only early exit. A race lost in the write transaction (`Conflict`)
is checked again, then holding what it reads (`exclusive`)."""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import IO

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from app import __version__
from app.apprec.build import build_receipt, original_from_msghead, receiver_from_msghead
from app.apprec.mapping import receipt_outcome
from app.apprec.model import KPR_NAME, AppRecVersion
from app.apprec.model import Party as AppRecParty
from app.content.model import ContentContext, HistoryKeys, IplosHistory
from app.core.findings import Finding
from app.deadlines import repository as deadline_repo
from app.ebxml import rules as ebxml_rules
from app.intake import history as history_repo
from app.intake import repository as repo
from app.intake import revocation, stages
from app.intake import rules as intake_rules
from app.intake.binding import (
    DELIVERY_FAILURE,
    DUPLICATE_INCONSISTENT,
    TRY_AGAIN,
    Finished,
    FromParty,
    Intake,
    TransportBinding,
)
from app.intake.outcome import Claim, ClaimKey, Outcome
from app.intake.payload_binding import PayloadBinding
from app.intake.received import CoreOutcome, OutcomeKind, ReceivedPayload
from app.intake.shared import (
    Conflict,
    compose_mails,
    decide_claim,
    decide_races,
    her_number,
    keep_history,
    record_business,
    reporting_calendar,
    utc_now,
)
from app.kommuner import repository as kommune_repo
from app.kommuner.years import renumbered_alike
from app.models import Message
from app.msghead.checks import msgid_duplicate
from app.parties import repository as party_repo
from app.platform.logs import get_logger
from app.platform.settings import ReceiverEnvironment
from app.query import totals
from app.registries import lookup as registries  # --- registries ---
from app.state import AppState
from app.statuses import MessageStatus

log = get_logger(__name__)

_ATTEMPTS = 3  # a race lost in the write transaction is checked again, so many times
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING}


class IntakeCore:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.settings = state.settings
        self.receivers = {str(k): v.value for k, v in self.settings.receivers.items()}
        self.windows = totals.windows_for(self.settings.reporting_calendar)
        # only configured years are judged; parsed once per setting, not per message
        self.calendar = reporting_calendar(self.settings.reporting_calendar)

    async def process(
        self, received: ReceivedPayload, binding: TransportBinding | None = None
    ) -> CoreOutcome:
        """Check, store and answer one received payload; commits once, before it returns.
        Without a binding the payload is opened as CMS (`PayloadBinding`, AMQP)."""
        bound = binding or PayloadBinding(received, self.state, self.state.keyring, self.receivers)
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                # after a race lost, the payload is checked holding what it reads
                return await self._attempt(received, bound, exclusive=attempt > 1)
            except Conflict as lost:
                log.info(
                    "intake.checked_again",
                    transport=received.transport,
                    reason=lost.reason,
                    attempt=attempt,
                )
        return CoreOutcome(
            kind=OutcomeKind.TEMPORARY,
            message_id=None,
            condition=DELIVERY_FAILURE,
            reason=TRY_AGAIN,
        )

    async def _attempt(
        self, received: ReceivedPayload, binding: TransportBinding, *, exclusive: bool
    ) -> CoreOutcome:
        """The steps, then the one write transaction. The steps only read the database, unless
        `exclusive` (after a race lost): then the transaction starts with the message row
        (on SQLite: the database's write lock, and this process's writer lock is held
        throughout), the claim is made at once and the history's state rows are locked as
        they are read, so a municipality's busy stream of messages is checked one by one."""
        async with (
            self._writer() if exclusive else contextlib.nullcontext(),
            self.state.sessions() as session,
        ):
            message = binding.new_message()
            out = Outcome(environment=message.environment, received_at=message.received_at)
            if exclusive:
                out.message_id = await repo.add_message(session, message)
            binding.record_arrival(out)
            intake = Intake(
                received=received,
                session=session,
                message=message,
                outcome=out,
                environment=message.environment or "pilot",
                exclusive=exclusive,
            )
            try:
                result = await self._steps(intake, binding)
            except Finished as finished:
                result = finished.outcome
            if not exclusive:
                await session.commit()  # ends the reads' transaction: the writes start anew
            out.completed_at = utc_now()
            message_id = await self._write(session, message, out, binding, locked=exclusive)
        for line in out.log_lines:
            log.log(_LEVELS[line.level], line.event, message_id=message_id, **line.fields)
        log.info(
            "intake.completed",
            message_id=message_id,
            status=out.status,
            environment=out.environment,
            transport=received.transport,
        )
        return replace(result, message_id=message_id, status=out.status)

    async def _steps(self, intake: Intake, binding: TransportBinding) -> CoreOutcome:
        await binding.before_party(intake)
        at = await self._registered_party(intake, binding)
        opened = await self._authenticate(at, binding)
        try:
            await self._admit(at, binding, opened)
            findings, business, history = await self._check_business(at, binding, opened)
        finally:
            opened.close()  # the spooled payload: memory or a temporary file, gone here
        return await self._answer(at, binding, findings, business, history)

    # --- the steps ------------------------------------------------------------------------

    async def _registered_party(self, intake: Intake, binding: TransportBinding) -> FromParty:
        """The registered sender the transport names, or a generic refusal."""
        number = her_number(intake.message.from_party_id)
        party = None
        if number is not None:
            party = await party_repo.get_party(intake.session, number)
        # --- registries --- (issue 23: a sender NHN's registries know; see app/registries)
        found = await registries.registered_sender(
            self.state, intake.session, number, party, intake.message.to_party_id
        )
        if found.finding is not None:
            raise Finished(await binding.refuse(intake, [found.finding], transient=True))
        party = found.party
        # --- registries ---
        if party is None:
            unknown = [binding.unknown_sender(intake)]
            raise Finished(await binding.refuse(intake, unknown, transient=False))
        return FromParty.of(intake, party)

    async def _authenticate(self, at: FromParty, binding: TransportBinding) -> stages.Opened:
        """Signatures, certificates and decryption with the party's certificates; from here
        the whole request is kept, and answers are specific (and signed where the transport
        signs)."""
        opened = await binding.open(at)
        # --- registries --- (issue 23: a certificate that fails: one forced refresh first)
        if not (opened.authenticated or opened.transient) and await registries.refreshed_sender(
            self.state, at.session, at.party.her_id, at.message.to_party_id
        ):
            opened.close()
            opened = await binding.open(at)  # at.party is the refreshed row
        # --- registries ---
        if opened.transient:
            # No waiting here (the request holds an intake slot): the refresher fetches in
            # the background and the sender retries after the temporary failure.
            revocation.request_refresh(self.state, opened)
        for kind, detail in opened.events:
            at.outcome.event(kind, **detail)
        if not opened.authenticated:
            opened.close()
            found = [*opened.transport_findings, *opened.business_findings]
            raise Finished(await binding.refuse(at, found, transient=opened.transient))
        at.outcome.sender_party_id = at.party.id
        at.outcome.raw = binding.raw()
        return opened

    async def _admit(self, at: FromParty, binding: TransportBinding, opened: stages.Opened) -> None:
        """The transport's checks after authentication, then the dedup claim (sender,
        transport message id). Earlier refusals are not claimed, so a corrected resend with
        the same id is processed, and nobody can take a party's id with a forged sender."""
        await binding.admit(at, opened)
        await self._claim(at, binding)
        at.outcome.payload_bytes = opened.size if opened.content is not None else None

    async def _claim(self, at: FromParty, binding: TransportBinding) -> None:
        """The dedup claim, made in the write transaction (`Outcome.claim`; its primary key
        decides a race). Otherwise this is a resend: its stored answer (`binding.replay`), or
        a refusal when the content differs."""
        session, out = at.session, at.outcome
        from_id, msg_id = at.message.from_party_id, at.received.transport_message_id
        assert from_id is not None
        sha = binding.content_sha256()
        claim = await repo.find_claim(session, from_id, msg_id)
        if claim is None:
            key = ClaimKey(from_party_id=from_id, ebms_message_id=msg_id)
            out.claim = Claim(key=key, content_sha256=sha)
            if not at.exclusive:
                return
            try:  # claimed at once, before the history's locks: one order for all writers
                await decide_claim(session, out)
                return
            except Conflict:  # another copy claimed it first: this one is its duplicate
                out.claim = None
                claim = await repo.find_claim(session, from_id, msg_id)
            if claim is None:  # claimed and given up meanwhile: the sender tries again
                retry = Finding(intake_rules.INTERNAL_ERROR, binding.message_id_location, TRY_AGAIN)
                raise Finished(await binding.error(at, [retry], transient=True))
        if claim.content_sha256 != sha:
            name = binding.message_id_name
            finding = Finding(
                ebxml_rules.DUPLICATE_INCONSISTENT,
                binding.message_id_location,
                f"{name} '{msg_id[:100]}' er allerede brukt av en annen melding med annet "
                f"innhold. Gi hver ny melding en ny {name}.",
            )
            raise Finished(await binding.error(at, [finding], condition=DUPLICATE_INCONSISTENT))
        raise Finished(await binding.replay(at, claim.message_id))

    async def _check_business(
        self, at: FromParty, binding: TransportBinding, opened: stages.Opened
    ) -> tuple[list[Finding], stages.Business | None, IplosHistory | None]:
        """MsgHead, an identical resend or a reused MsgId, then the content against the
        history of the receiver's environment."""
        findings = list(opened.business_findings)
        content = opened.content
        if content is None or findings:
            return findings, None, None
        read = await anyio.to_thread.run_sync(lambda: self._read_head(at, content))
        wrong = binding.check_head(at, read)
        if wrong is not None:
            raise Finished(await binding.error(at, [wrong]))
        out = at.outcome
        out.msghead_sha256 = await anyio.to_thread.run_sync(lambda: stages.sha256_of(content))
        reused, rejected_at = await self._msgid_reused(at, binding, read)
        history, context = await self._content_context(at, binding, read)
        if read.fmt:
            read = replace(read, keys=HistoryKeys())  # 100 000 notifications: some 40 MB
        context = replace(context, corrects_rejected_at=rejected_at)
        business = await anyio.to_thread.run_sync(lambda: stages.check_content(read, context))
        findings.extend(business.findings)
        if reused and business.msghead is not None:
            findings.append(msgid_duplicate(business.msghead))
        record_business(out, at.party, business, findings)
        out.event("validated", findings=len(findings))
        return findings, business, history

    def _read_head(self, at: FromParty, content: IO[bytes]) -> stages.BusinessHead:
        expect = stages.HeadExpectations(
            now=at.received.received_at,
            ebxml_from_her=at.message.from_party_id,
            ebxml_to_her=at.message.to_party_id,
            party_her=str(at.party.her_id),
            our_her_ids=list(self.receivers),
            skew=timedelta(seconds=self.settings.gen_date_skew_seconds),
        )
        return stages.read_business(content, expect)

    async def _msgid_reused(
        self, at: FromParty, binding: TransportBinding, read: stages.BusinessHead
    ) -> tuple[bool, datetime | None]:
        """What earlier messages with this MsgId mean (DOMAIN 2.1): an identical one that was
        not rejected makes this a resend (its stored AppRec again: `binding.resend`); a
        different one that was not rejected makes the MsgId reused (E10, the bool); a
        rejected one frees the MsgId for the corrected message, whose originals are then
        judged as corrections for timeliness (the datetime, issue 21)."""
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
            raise Finished(await binding.resend(at, resend.message_id))
        rejected = [e.received_at for e in earlier if e.status == MessageStatus.AVVIST]
        return bool(answered), min(rejected, default=None)

    async def _content_context(
        self, at: FromParty, binding: TransportBinding, read: stages.BusinessHead
    ) -> tuple[IplosHistory, ContentContext]:
        """The history of the party's municipalities and what the content is judged by."""
        session, environment = at.session, at.environment
        kommuner = [k.kommune_nr for k in at.party.kommuner]
        history = IplosHistory()
        calendar = self.calendar
        if read.fmt:
            # the versions before the history: a change in between is seen at the write
            at.outcome.history_read = await history_repo.read_versions(
                session, environment, kommuner, lock=at.exclusive
            )
            history = await history_repo.load_history(
                session, environment, kommuner, read.keys, binding.keys.register
            )
            granted = await deadline_repo.extensions(session, kommuner=kommuner)
            calendar = replace(calendar, extensions=granted)
        context = ContentContext(
            now=at.received.received_at,
            # a municipality renumbered one to one (2024) may report under either number
            allowed_kommuner=renumbered_alike(k.kommune_nr for k in at.party.kommuner),
            allow_synthetic=environment != ReceiverEnvironment.PRODUCTION.value,
            history=history,
            calendar=calendar,
            environment=environment,
            kommune_years=await kommune_repo.imported_years(session),
        )
        return history, context

    async def _answer(
        self,
        at: FromParty,
        binding: TransportBinding,
        findings: list[Finding],
        business: stages.Business | None,
        history: IplosHistory | None,
    ) -> CoreOutcome:
        """The AppRec for the findings (the binding wraps it as its transport answers), and
        what an accepted message establishes: history, register store, email."""
        party, out = at.party, at.outcome
        apprec_id = str(uuid.uuid4())
        apprec = await anyio.to_thread.run_sync(
            lambda: self._build_apprec(at, findings, business, apprec_id)
        )
        status = receipt_outcome(findings).status
        out.status = MessageStatus.of_apprec(status)
        out.findings.extend(findings)
        out.findings_kommuner = frozenset(k.kommune_nr for k in party.kommuner)
        await binding.deliver(at, apprec, apprec_id, status)
        keep_history(
            out, environment=at.environment, business=business, history=history, status=status
        )
        # the email to innsendingsansvarlig, composed in the write transaction (which gives
        # the message its id)
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
        at: FromParty,
        findings: list[Finding],
        business: stages.Business | None,
        apprec_id: str,
    ) -> bytes:
        """The AppRec XML (unsigned: the binding protects it as its transport sends it)."""
        msghead = business.msghead if business else None
        fallback = AppRecParty(name=at.party.name, her_id=str(at.party.her_id))
        version = (
            AppRecVersion.V1_0 if self.settings.apprec_version == "1.0" else AppRecVersion.V1_1
        )
        our_her = at.message.to_party_id or next(iter(self.receivers))
        now = utc_now()
        return build_receipt(
            findings,
            sender=AppRecParty(name=KPR_NAME, her_id=our_her),
            receiver=receiver_from_msghead(msghead, fallback=fallback),
            original=original_from_msghead(
                msghead,
                received_at=now,
                fallback_id=at.received.transport_message_id,
                fallback_type=at.received.action,
            ),
            now=now,
            apprec_id=apprec_id,
            version=version,
            software_version=__version__,
        )

    # --- the one write transaction ---------------------------------------------------------

    def _writer(self) -> contextlib.AbstractAsyncContextManager[object]:
        """This process's SQLite writers queue here (SQLite has one writer); nothing on
        PostgreSQL."""
        lock = self.state.sqlite_writer
        return lock if lock is not None else contextlib.nullcontext()

    async def _write(
        self,
        session: AsyncSession,
        message: Message,
        out: Outcome,
        binding: TransportBinding,
        *,
        locked: bool,
    ) -> int:
        """The one write transaction and its commit (the answer promises the message is
        stored): the message row, the races (the dedup claim, the history's versions), then
        all the outcome holds. The writer lock is taken only here (`locked`: held since the
        attempt began), so a large message's checks hold up no other message. A race lost:
        rolled back, `Conflict`."""
        async with contextlib.nullcontext() if locked else self._writer():
            if out.message_id is None:
                out.message_id = await repo.add_message(session, message)
            message_id = out.message_id
            await decide_races(session, out)
            if out.mails_for is not None:
                out.mails.extend(out.mails_for(message_id))
            await repo.store_outcome(session, out, self.windows, binding.keys.register)
            await session.commit()
        return message_id
