"""The EDI relay as the mail sender of asynchronous replies to `POST /ebms` (issue 26): a
sender whose CPA says `syncReplyMode="none"` for a `mailto:` endpoint gets the stored reply by
mail, sent by the reply outbox (`app/replies/sender.py`, which calls `send_reply` and records
the try). Plugged in as `AppState.reply_mailer` when the relay (`KPR_EDI_SMTP_URL`) and an EDI
address (`KPR_EDI_MAILBOXES`, the From of our replies) are configured."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime

from app.edi.mail import ebxml_mail
from app.edi.sender import RelayConfig, connect_relay
from app.platform.settings import Settings


class RelayMailer:
    """`app.replies.sender.MailReplies` over the EDI relay: one connection per reply."""

    def __init__(self, relay: RelayConfig, mail_from: str) -> None:
        self.relay, self.mail_from = relay, mail_from

    async def send_reply(self, address: str, body: bytes, content_type: str) -> None:
        mail = ebxml_mail(
            body,
            content_type,
            sender=self.mail_from,
            recipient=address,
            message_id=f"reply-{uuid.uuid4()}@kpr-mottak",
            date=datetime.now(UTC),
        )
        smtp = await connect_relay(self.relay)
        try:
            await smtp.sendmail(mail.sender, [mail.recipient], mail.data)
        finally:
            with contextlib.suppress(Exception):
                await smtp.quit()


def reply_mailer(settings: Settings) -> RelayMailer | None:
    """The mailer when a relay and an EDI address are configured; None keeps mailto: replies
    in the HTTP exchange."""
    relay = RelayConfig.from_settings(settings)
    if relay is None or not settings.edi_mailboxes:
        return None
    return RelayMailer(relay, settings.edi_mailboxes[0].address)
