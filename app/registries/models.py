"""What the registries say, read from their answers: pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.parties.channels import ReplyChannels

# Electronic address types of the AR (kodeverk 9044) that the transports use.
E_SB_ASYNC = "E_SB_ASYNC"
E_SB_SYNC = "E_SB_SYNC"
E_SB_ERROR = "E_SB_ERROR"


class RegistryUnavailable(Exception):
    """The registry could not be asked or gave no usable answer (outage, deadline, fault
    other than an unknown HER-id, an unreadable body). The text names no URL."""


class RegistryAnswerInvalid(ValueError):
    """The registry answered, but what it says cannot be believed (bad orgnr, a certificate
    that does not chain to a trust anchor, an unknown municipality)."""


@dataclass(frozen=True, slots=True)
class ArParty:
    """A communication party of the Adresseregister."""

    her_id: int
    name: str
    active: bool
    valid: bool  # IsValidCommunicationParty
    municipality: str | None  # kodeverk 3402 as the AR writes it: "301" is Oslo (0301)
    orgnr: str | None  # the party's or its parent's organisation number
    parent_her_id: int | None = None
    addresses: dict[str, str] = field(default_factory=dict)  # E_SB_ASYNC -> address


@dataclass(frozen=True, slots=True)
class Agreement:
    """A CPA (or, failing one, the CPP) for the pair of HER-ids: only what the intake uses."""

    cpa_id: str | None  # None: the CPP, no agreement
    service_actions: tuple[tuple[str, str], ...] = ()
    requires_signing: bool = True
    requires_encryption: bool = True
    reply_channels: ReplyChannels | None = None  # how the party wants to be answered


@dataclass(frozen=True, slots=True)
class RegistryParty:
    """Everything fetched for one HER-id, before it is checked."""

    party: ArParty
    signing_der: bytes | None
    encryption_der: bytes | None
    agreement: Agreement | None = None

    def to_json(self) -> dict[str, Any]:
        import base64

        p = self.party
        return {
            "name": p.name,
            "active": p.active,
            "valid": p.valid,
            "municipality": p.municipality,
            "orgnr": p.orgnr,
            "parent_her_id": p.parent_her_id,
            "addresses": dict(p.addresses),
            "signing": base64.b64encode(self.signing_der).decode() if self.signing_der else None,
            "encryption": (
                base64.b64encode(self.encryption_der).decode() if self.encryption_der else None
            ),
            "cpa_id": self.agreement.cpa_id if self.agreement else None,
            # the profile's (a CPP, no agreement): a CPA's are kept with the CPA (party_cpa)
            "profile_reply_channels": (
                self.agreement.reply_channels.as_json()
                if self.agreement
                and self.agreement.cpa_id is None
                and self.agreement.reply_channels
                else None
            ),
        }


def queue_name(address: str | None) -> str | None:
    """The queue of an AMQP address: the part after the last '/'."""
    if not address:
        return None
    return address.rsplit("/", 1)[-1] or None


def kommune_nr(code: str | None) -> str | None:
    """Kodeverk 3402 without leading zeros ("301") as a four-digit municipality number."""
    if code is None:
        return None
    text = code.strip()
    if not (text.isascii() and text.isdigit()) or not 0 < len(text) <= 4:
        return None
    return text.zfill(4)
