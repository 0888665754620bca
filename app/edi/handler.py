"""A mail on the EDI channel through the intake, and its reply into the outbox.

The mail's MIME body goes to the same entry point as `POST /ebms`
(`IntakeService.receive`), with `transport="ebxml-smtp"`. The intake commits the outcome
before it answers; the reply is then queued (`edi_outbox`) for the sender's SMTP endpoint in
its CPA, keyed by the mail's SHA-256, and only then may the mail leave the mailbox. A crash
anywhere before that leaves the mail where it was: read again, the intake's dedup by
(sender, MessageId) gives the stored reply, and the outbox's key keeps it from going twice.

Nothing is mailed to a sender that was not authenticated (envelope signature and registered
signer), nor for a signal, nor ever to an address the mail itself names.

The environment: the intake reads it from `KPR_RECEIVERS` by the signed To HER-id. A mailbox
serves one environment, so its intake knows only the HER-ids of that environment: a message
whose To belongs to another environment is refused as addressed to an unknown receiver
(stored, logged), whatever the mail's headers say.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from app.edi import repository as repo
from app.edi.mail import IncomingMail, MailUnreadable, read_mail
from app.intake.ebms.request import IntakeRequest, Reply
from app.intake.service import IntakeService
from app.platform.logs import get_logger
from app.platform.mailboxes import EdiMailbox
from app.platform.settings import Settings
from app.replies.edi_mail import reply_address
from app.state import AppState

log = get_logger(__name__)

TRANSPORT: Final = "ebxml-smtp"


@dataclass(frozen=True, slots=True)
class Sender:
    """An authenticated sender, whose CPA names where its replies go."""

    party_id: int
    cpa_id: str | None
    service: str | None = None
    action: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Handled:
    committed: bool  # the outcome is stored: the mail may be removed from the mailbox
    message_id: int | None = None
    reply: str = "none"  # queued | already_queued | none


def mail_key(*pieces: bytes) -> str:
    """The outbox key of a mail: a mail read twice (after a crash) is answered once."""
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece)
    return "mail:" + digest.hexdigest()


def new_request_id() -> str:
    return "edi-" + uuid.uuid4().hex


def scoped_settings(settings: Settings, box: EdiMailbox) -> Settings:
    """The settings the intake sees for one mailbox: only the receivers of its environment."""
    receivers = {
        her: env for her, env in settings.receivers.items() if env.value == box.environment
    }
    return settings.model_copy(update={"receivers": receivers})


class EdiIntake:
    """The EDI channel's side of the intake, for every configured mailbox."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self._scoped = {
            b.address: scoped_settings(state.settings, b) for b in state.settings.edi_mailboxes
        }

    def service(self, box: EdiMailbox) -> IntakeService:
        """A new service per mail, as per HTTP request: it takes the keyring in force now."""
        settings = self._scoped.get(box.address) or scoped_settings(self.state.settings, box)
        return IntakeService(replace(self.state, settings=settings))

    async def handle(self, raw: bytes, box: EdiMailbox) -> Handled:
        try:
            mail = read_mail(raw, max_header_bytes=self.state.settings.max_header_bytes)
        except MailUnreadable:  # the intake reports what it cannot read (stored, not mailed)
            mail = IncomingMail(body=raw, content_type=None, soap_action=None)
        request = IntakeRequest(
            body=mail.body,
            content_type=mail.content_type,
            soap_action=mail.soap_action,
            remote_addr=None,
            request_id=new_request_id(),
            received_at=datetime.now(UTC),
            transport=TRANSPORT,
        )
        reply = await self.service(box).receive(request)
        return await self.queue(request.request_id, reply, box, mail_key(raw))

    async def queue(
        self, request_id: str, reply: Reply, box: EdiMailbox, key: str, *, to: Sender | None = None
    ) -> Handled:
        """The reply into the outbox once the intake's outcome is known to be stored. `to`:
        the sender when the stored row does not name it (a mail refused for its size)."""
        async with self._writer(), self.state.sessions() as session:
            stored = await repo.outcome_of(session, request_id)
            if stored is None:  # nothing committed (the database is away): keep the mail
                log.warning("edi.not_stored", mailbox=box.label, request_id=request_id)
                return Handled(committed=False)
            to = to or _sender_of(stored)
            if to is None or reply.status_code == 204 or not reply.body:
                reason = "signal" if to is not None else "not_authenticated"
                log.info("edi.not_answered", message_id=stored.message_id, reason=reason)
                return Handled(committed=True, message_id=stored.message_id)
            recipient = await reply_address(session, to.party_id, to.cpa_id, to.service, to.action)
            queued = await repo.queue_reply(
                session,
                repo.NewReply(
                    dedup_key=key,
                    message_id=stored.message_id,
                    mail_from=box.address,
                    recipient=recipient,
                    content_type=reply.content_type,
                    body=reply.body,
                ),
            )
            await session.commit()
        if recipient is None:
            log.error("edi.no_reply_address", message_id=stored.message_id)
        log.info("edi.reply_queued", message_id=stored.message_id, new=queued)
        return Handled(
            committed=True,
            message_id=stored.message_id,
            reply="queued" if queued else "already_queued",
        )

    def _writer(self) -> contextlib.AbstractAsyncContextManager[object]:
        lock = self.state.sqlite_writer
        return lock if lock is not None else contextlib.nullcontext()


def _sender_of(stored: repo.StoredOutcome) -> Sender | None:
    """The sender, once the intake authenticated it (nobody else gets a mail)."""
    if stored.sender_party_id is None:
        return None
    return Sender(stored.sender_party_id, stored.cpa_id, stored.service, stored.action)
