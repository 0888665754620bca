"""How a party wants to be answered, read from its side of a CPA (issue 26): the delivery
channel of each Service/Action it can send, that channel's `syncReplyMode`, the endpoint of its
transport's receiver and the reliable-messaging parameters of its document exchange.

Pure: an lxml PartyInfo in, frozen dataclasses (and their JSON form for `party_cpa`) out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lxml import etree

CPA_NS = "http://www.oasis-open.org/committees/ebxml-cppa/schema/cpp-cpa-2_0.xsd"
_NS = {"tp": CPA_NS}

# CPPA 2.0's default for a MessagingCharacteristics without the attribute.
DEFAULT_SYNC_REPLY_MODE = "none"
# The modes that keep the reply in the request's HTTP exchange (today's behaviour).
SYNCHRONOUS_MODES = frozenset(
    {"signalsAndResponse", "responseOnly", "signalsOnly", "mshSignalsOnly"}
)

# xs:duration without years and months (a month has no fixed length): PnDTnHnMnS.
_DURATION = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def duration_seconds(text: str | None) -> int | None:
    """`PT720M` -> 43200; None for an absent or unreadable value (or one with years or
    months)."""
    if text is None:
        return None
    found = _DURATION.match(text.strip())
    if found is None or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        return None
    parts = {k: float(v) for k, v in found.groupdict().items() if v is not None}
    return round(
        parts.get("d", 0) * 86400
        + parts.get("h", 0) * 3600
        + parts.get("m", 0) * 60
        + parts.get("s", 0)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyChannel:
    """One delivery channel as far as answering goes."""

    channel_id: str
    sync_reply_mode: str
    endpoint: str | None  # the transport receiver's Endpoint uri, as the CPA writes it
    retries: int | None
    retry_interval_seconds: int | None

    @property
    def synchronous(self) -> bool:
        return self.sync_reply_mode in SYNCHRONOUS_MODES

    def as_json(self) -> dict[str, Any]:
        return {
            "channel_id": self.channel_id,
            "sync_reply_mode": self.sync_reply_mode,
            "endpoint": self.endpoint,
            "retries": self.retries,
            "retry_interval_seconds": self.retry_interval_seconds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReplyChannel:
        retries, interval = data.get("retries"), data.get("retry_interval_seconds")
        return cls(
            channel_id=str(data.get("channel_id") or ""),
            sync_reply_mode=str(data.get("sync_reply_mode") or DEFAULT_SYNC_REPLY_MODE),
            endpoint=str(data["endpoint"]) if data.get("endpoint") else None,
            retries=int(retries) if isinstance(retries, int) else None,
            retry_interval_seconds=int(interval) if isinstance(interval, int) else None,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyChannels:
    """A party's channels: per Service/Action it can send, and its default MSH channel."""

    actions: tuple[tuple[str, str, ReplyChannel], ...] = ()
    default: ReplyChannel | None = None

    def for_action(self, service: str | None, action: str | None) -> ReplyChannel | None:
        """The channel the party sends this Service/Action on; its default MSH channel when
        the CPA does not list it."""
        found = next((c for s, a, c in self.actions if s == service and a == action), None)
        return found if found is not None else self.default

    def as_json(self) -> dict[str, Any]:
        return {
            "actions": [{"service": s, "action": a, **c.as_json()} for s, a, c in self.actions],
            "default": self.default.as_json() if self.default is not None else None,
        }

    @classmethod
    def from_json(cls, data: object) -> ReplyChannels | None:
        if not isinstance(data, dict):
            return None
        actions = tuple(
            (str(a.get("service") or ""), str(a.get("action") or ""), ReplyChannel.from_json(a))
            for a in data.get("actions") or ()
            if isinstance(a, dict)
        )
        default = data.get("default")
        return cls(
            actions=actions,
            default=ReplyChannel.from_json(default) if isinstance(default, dict) else None,
        )


def _attr(el: etree._Element, name: str) -> str | None:
    value = el.get(f"{{{CPA_NS}}}{name}")
    return value if value is not None else el.get(name)


def _by_id(info: etree._Element, tag: str, id_attr: str) -> dict[str, etree._Element]:
    found: dict[str, etree._Element] = {}
    for el in info.iterfind(f"tp:{tag}", _NS):
        key = _attr(el, id_attr)
        if key:
            found.setdefault(key, el)
    return found


def _int(text: str | None) -> int | None:
    value = (text or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


class _Channels:
    """A PartyInfo's delivery channels, transports and document exchanges by id."""

    def __init__(self, info: etree._Element) -> None:
        self.channels = _by_id(info, "DeliveryChannel", "channelId")
        self.transports = _by_id(info, "Transport", "transportId")
        self.exchanges = _by_id(info, "DocExchange", "docExchangeId")
        self.read: dict[str, ReplyChannel] = {}

    def channel(self, channel_id: str | None) -> ReplyChannel | None:
        if not channel_id or channel_id not in self.channels:
            return None
        if channel_id not in self.read:
            self.read[channel_id] = self._read(channel_id, self.channels[channel_id])
        return self.read[channel_id]

    def _read(self, channel_id: str, el: etree._Element) -> ReplyChannel:
        chars = el.find("tp:MessagingCharacteristics", _NS)
        mode = _attr(chars, "syncReplyMode") if chars is not None else None
        transport = self.transports.get(_attr(el, "transportId") or "")
        endpoint = None
        if transport is not None:
            ep = transport.find("tp:TransportReceiver/tp:Endpoint", _NS)
            uri = _attr(ep, "uri") if ep is not None else None
            endpoint = uri.strip() if uri and uri.strip() else None
        retries, interval = self._reliability(_attr(el, "docExchangeId"))
        return ReplyChannel(
            channel_id=channel_id,
            sync_reply_mode=(mode or DEFAULT_SYNC_REPLY_MODE).strip(),
            endpoint=endpoint,
            retries=retries,
            retry_interval_seconds=interval,
        )

    def _reliability(self, exchange_id: str | None) -> tuple[int | None, int | None]:
        """Retries and RetryInterval: the receiver binding's (how the party wants to be
        sent to), else its sender binding's."""
        exchange = self.exchanges.get(exchange_id or "")
        if exchange is None:
            return None, None
        for binding in ("ebXMLReceiverBinding", "ebXMLSenderBinding"):
            rm = exchange.find(f"tp:{binding}/tp:ReliableMessaging", _NS)
            if rm is not None:
                return (
                    _int(rm.findtext("tp:Retries", namespaces=_NS)),
                    duration_seconds(rm.findtext("tp:RetryInterval", namespaces=_NS)),
                )
        return None, None


def read_reply_channels(info: etree._Element) -> ReplyChannels:
    """The channels of every Service/Action the PartyInfo can send, and its default one."""
    channels = _Channels(info)
    actions: dict[tuple[str, str], ReplyChannel] = {}
    for binding in info.iterfind(".//tp:ServiceBinding", _NS):
        service = (binding.findtext("tp:Service", namespaces=_NS) or "").strip()
        for action in binding.iterfind("tp:CanSend/tp:ThisPartyActionBinding", _NS):
            channel = channels.channel(
                (action.findtext("tp:ChannelId", namespaces=_NS) or "").strip()
            )
            if channel is not None:
                actions.setdefault((service, _attr(action, "action") or ""), channel)
    return ReplyChannels(
        actions=tuple((s, a, c) for (s, a), c in actions.items()),
        default=channels.channel(_attr(info, "defaultMshChannelId")),
    )
