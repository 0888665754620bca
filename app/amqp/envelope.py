"""Helsenorge.Messaging's message properties, read and written as plain data.

A message is one `Data` section with the AMQP properties `message-id`, `to`, `subject`,
`correlation-id`, `reply-to`, `content-type`, and string application properties `fromHerId`,
`toHerId`, `applicationTimeStamp` (`yyyy-MM-ddTHH:mm:ssK`, UTC), `cpaId`, `enqueuedTimeUtc`
and `X-…` metadata. Nothing here touches the network: `link` maps these to proton messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.amqp.conditions import ErrorCondition

CONTENT_TYPE = "application/pkcs7-mime; smime-type=signed-and-enveloped-data"
APPREC_SUBJECT = "APPREC"


def queue_names(her_id: int) -> dict[str, str]:
    """The queues Helsenorge gives a HER-id (its AR addresses `E_SB_*` name them)."""
    return {kind: f"{her_id}_{kind}" for kind in ("async", "sync", "error", "dl", "syncreply")}


def format_timestamp(moment: datetime) -> str:
    """`yyyy-MM-ddTHH:mm:ssK` in UTC, as .NET writes it: `2026-12-05T22:55:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One AMQP message's properties, as stored in the inbox and the outbox."""

    message_id: str
    to: str | None = None
    subject: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    content_type: str | None = None
    application: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "to": self.to,
            "subject": self.subject,
            "correlation_id": self.correlation_id,
            "reply_to": self.reply_to,
            "content_type": self.content_type,
            "application": dict(self.application),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Envelope:
        application = data.get("application") or {}
        return cls(
            message_id=str(data["message_id"]),
            to=data.get("to"),
            subject=data.get("subject"),
            correlation_id=data.get("correlation_id"),
            reply_to=data.get("reply_to"),
            content_type=data.get("content_type"),
            application={str(k): str(v) for k, v in application.items()},
        )

    def her_id(self, name: str) -> int | None:
        value = self.application.get(name, "").strip()
        return int(value) if value.isdigit() else None

    @property
    def from_her_id(self) -> int | None:
        return self.her_id("fromHerId")

    @property
    def to_her_id(self) -> int | None:
        return self.her_id("toHerId")


@dataclass(frozen=True, slots=True)
class Refusal:
    condition: ErrorCondition
    description: str


def check(envelope: Envelope, size: int, max_bytes: int) -> Refusal | None:
    """What Helsenorge's receiver refuses before reading the payload; None when it is fine."""
    if size > max_bytes:
        return Refusal(
            ErrorCondition.UNSUPPORTED_MESSAGE,
            f"Meldingen er {size} byte, større enn grensen på {max_bytes} byte.",
        )
    missing = [
        name
        for name, present in (
            ("fromHerId", envelope.from_her_id is not None),
            ("toHerId", envelope.to_her_id is not None),
            ("subject", bool(envelope.subject)),
            ("applicationTimeStamp", "applicationTimeStamp" in envelope.application),
            ("content-type", bool(envelope.content_type)),
        )
        if not present
    ]
    if missing:
        return Refusal(
            ErrorCondition.INVALID_FIELD_VALUE,
            "Meldingen mangler eller har ugyldig verdi i: " + ", ".join(missing) + ".",
        )
    if parse_timestamp(envelope.application["applicationTimeStamp"]) is None:
        return Refusal(
            ErrorCondition.INVALID_FIELD_VALUE, "applicationTimeStamp er ikke et gyldig tidspunkt."
        )
    return None


def reply(original: Envelope, message_id: str, now: datetime, subject: str) -> Envelope:
    """A new message back to the original's sender: from and to swapped."""
    application = {
        "fromHerId": original.application.get("toHerId", ""),
        "toHerId": original.application.get("fromHerId", ""),
        "applicationTimeStamp": format_timestamp(now),
    }
    if "cpaId" in original.application:
        application["cpaId"] = original.application["cpaId"]
    return Envelope(
        message_id=message_id,
        subject=subject,
        correlation_id=original.message_id,
        content_type=CONTENT_TYPE,
        application=application,
    )


def error_reply(original: Envelope, message_id: str, now: datetime, refusal: Refusal) -> Envelope:
    """The error message for `{sender}_error`: subject copied, the condition, empty body."""
    base = reply(original, message_id, now, original.subject or "")
    application = dict(base.application)
    application.update(
        {
            "originalMessageId": original.message_id,
            "receiverTimeStamp": format_timestamp(now),
            "errorCondition": str(refusal.condition),
            "errorDescription": refusal.description,
        }
    )
    return Envelope(
        message_id=message_id,
        subject=base.subject,
        correlation_id=base.correlation_id,
        content_type=None,
        application=application,
    )
