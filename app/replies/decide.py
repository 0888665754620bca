"""Whether a reply stays in the request's HTTP exchange or goes out as a message of its own:
decided from the sender's CPA as registered (issue 26), never from the message (eb:SyncReply
is outside the signature and decides nothing). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from app.parties.channels import ReplyChannel, ReplyChannels

# Without Retries/RetryInterval in the CPA: three retries a minute apart (before the cap).
DEFAULT_RETRIES = 3
DEFAULT_RETRY_INTERVAL_SECONDS = 60
MAX_ENDPOINT = 1000  # reply_outbox.endpoint


class Fallback(StrEnum):
    """Why a reply the CPA wants asynchronous is answered synchronously after all."""

    NO_ENDPOINT = "no_endpoint"  # the channel's transport names no endpoint
    UNUSABLE_ENDPOINT = "unusable_endpoint"  # neither http(s) nor mailto, or unreadable
    NO_MAIL_SENDER = "no_mail_sender"  # mailto:, and no EDI mail sender is configured


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Where an asynchronous reply goes, and how often it is tried."""

    channel: str  # http | mailto
    endpoint: str
    retries: int
    retry_interval_seconds: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    route: Route | None  # None: the synchronous reply
    mode: str | None = None  # the channel's syncReplyMode, when the CPA gave one
    fallback: Fallback | None = None  # set when the CPA asked for `none` but cannot have it


SYNCHRONOUS = Decision(route=None)


def endpoint_channel(uri: str) -> str | None:
    """'http' for an http(s) URL with a host, 'mailto' for a mail address, None otherwise
    (also for one longer than the outbox keeps)."""
    text = uri.strip()
    if len(text) > MAX_ENDPOINT:
        return None
    if text.lower().startswith("mailto:"):
        address = text[len("mailto:") :].lstrip("/")
        local, _, domain = address.partition("@")
        return (
            "mailto" if local and "." in domain and not any(c in address for c in " <>,") else None
        )
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() in ("http", "https") and parts.hostname:
        return "http"
    return None


def decide(
    channels: ReplyChannels | None,
    service: str | None,
    action: str | None,
    *,
    mail_sender: bool,
) -> Decision:
    """The reply's way for a message sent under `service`/`action` by a party whose CPA has
    `channels` (None: no CPA registered with channel data: synchronous, as always)."""
    channel = channels.for_action(service, action) if channels is not None else None
    if channel is None:
        return SYNCHRONOUS
    if channel.synchronous:
        return Decision(route=None, mode=channel.sync_reply_mode)
    return _asynchronous(channel, mail_sender=mail_sender)


def _asynchronous(channel: ReplyChannel, *, mail_sender: bool) -> Decision:
    mode = channel.sync_reply_mode
    if channel.endpoint is None:
        return Decision(route=None, mode=mode, fallback=Fallback.NO_ENDPOINT)
    kind = endpoint_channel(channel.endpoint)
    if kind is None:
        return Decision(route=None, mode=mode, fallback=Fallback.UNUSABLE_ENDPOINT)
    if kind == "mailto" and not mail_sender:
        return Decision(route=None, mode=mode, fallback=Fallback.NO_MAIL_SENDER)
    retries = channel.retries if channel.retries is not None else DEFAULT_RETRIES
    interval = channel.retry_interval_seconds or DEFAULT_RETRY_INTERVAL_SECONDS
    return Decision(
        route=Route(
            channel=kind,
            endpoint=channel.endpoint.strip(),
            retries=retries,
            retry_interval_seconds=interval,
        ),
        mode=mode,
    )


def next_delay(
    failures: int, *, retries: int, interval: int, cap: int, slow: int
) -> tuple[int, bool]:
    """Seconds to the next try after `failures` failed tries in a row, and whether the slow
    schedule has begun: the CPA's RetryInterval doubled per failure, capped by
    KPR_REPLY_RETRY_MAX_SECONDS, for its Retries; then every `slow` seconds until an operator
    resends (or the sender sends the message again)."""
    if failures > retries:
        return slow, True
    step = max(interval, 1) * (1 << min(max(failures - 1, 0), 20))
    return min(step, cap), False


def shown_endpoint(endpoint: str) -> str:
    """The endpoint without user information (a password in a URL is never shown)."""
    if endpoint_channel(endpoint) != "http":
        return endpoint[:300]
    parts = urlsplit(endpoint.strip())
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc, query="", fragment="").geturl()[:300]
