"""What a transport plugs into the intake core: the `TransportBinding` hooks, the contexts the
core's steps pass them, and the one early exit (`Finished`).

The core (`app/intake/core.py`) runs the steps every transport needs, in one order: the
sender's party, opening the payload, the dedup claim, MsgHead and content, the AppRec, the
history, the register store and the email, then the one commit. A binding supplies only what
its transport decides: the request's row, how the payload is opened (CMS for AMQP; the ebXML
envelope signature and the enveloped MsgHead for ebXML), its checks after authentication (the
CPA, signals), and how answers are wrapped (an ebXML Acknowledgment or MessageError, or the
AppRec itself for AMQP, which signs and encrypts it as it sends it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.apprec.model import AppRecStatus
from app.core.findings import Finding
from app.intake import stages
from app.intake.outcome import Outcome
from app.intake.received import CoreOutcome, ReceivedPayload
from app.keyring import Keyring
from app.models import Message, Party

# conditions of a refusal (the transport maps them to its own error codes)
NOT_AUTHENTICATED = "NotAuthenticated"
UNKNOWN_RECEIVER = "UnknownReceiver"
DUPLICATE_INCONSISTENT = "DuplicateInconsistent"
DELIVERY_FAILURE = "DeliveryFailure"
TRY_AGAIN = "Meldingen kunne ikke behandles nå. Send den på nytt om litt."


class Finished(Exception):
    """Processing ends early with this outcome (already recorded in the `Outcome`)."""

    def __init__(self, outcome: CoreOutcome) -> None:
        self.outcome = outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class Intake:
    """One received payload being processed: what every step reads, and the outcome the
    steps fill in (written at the one commit)."""

    received: ReceivedPayload
    session: AsyncSession
    message: Message  # the row as stored on arrival
    outcome: Outcome
    environment: str
    exclusive: bool  # after a race lost: claim and lock as the steps read


@dataclass(frozen=True, slots=True, kw_only=True)
class FromParty(Intake):
    """A payload from a registered party: the context of the steps after the party step."""

    party: Party

    @classmethod
    def of(cls, intake: Intake, party: Party) -> FromParty:
        return cls(
            received=intake.received,
            session=intake.session,
            message=intake.message,
            outcome=intake.outcome,
            environment=intake.environment,
            exclusive=intake.exclusive,
            party=party,
        )


class TransportBinding(Protocol):
    """The hooks of one transport, for one received payload (an instance per request)."""

    # where the transport's message id sits and what the sender calls it, for findings
    message_id_location: str
    message_id_name: str
    # the keyring this request started with (a reload swaps in a new one for the next)
    keys: Keyring

    def new_message(self) -> Message:
        """The request's row, with what the transport read (header fields, environment)."""
        ...

    def record_arrival(self, out: Outcome) -> None:
        """The arrival's events."""
        ...

    async def before_party(self, intake: Intake) -> None:
        """What the transport refuses before the sender is looked up (raises `Finished`)."""
        ...

    def unknown_sender(self, intake: Intake) -> Finding:
        """The finding for a sender that is not registered."""
        ...

    async def refuse(
        self, intake: Intake, findings: list[Finding], *, transient: bool
    ) -> CoreOutcome:
        """A refusal before the sender is authenticated: generic to the sender."""
        ...

    async def open(self, at: FromParty) -> stages.Opened:
        """Signatures, certificates and decryption with the party's certificates."""
        ...

    def raw(self) -> bytes:
        """What is kept of the request once the sender is authenticated."""
        ...

    async def admit(self, at: FromParty, opened: stages.Opened) -> None:
        """The transport's own checks after authentication (raises `Finished`)."""
        ...

    def content_sha256(self) -> str:
        """The hash a resend of the same transport message id must match."""
        ...

    async def error(
        self,
        at: FromParty,
        findings: list[Finding],
        *,
        transient: bool = False,
        condition: str = NOT_AUTHENTICATED,
    ) -> CoreOutcome:
        """A refusal after authentication: specific, and signed where the transport signs."""
        ...

    async def replay(self, at: FromParty, original: int) -> CoreOutcome:
        """The same transport message again: the stored answer (status DUPLICATE)."""
        ...

    def check_head(self, at: FromParty, read: stages.BusinessHead) -> Finding | None:
        """A transport rule on the MsgHead read (e.g. ebXML's Action against MsgInfo/Type)."""
        ...

    async def resend(self, at: FromParty, original: int) -> CoreOutcome:
        """The same MsgHead in a new transport message: its stored AppRec again."""
        ...

    async def deliver(
        self, at: FromParty, apprec: bytes, apprec_id: str, status: AppRecStatus
    ) -> None:
        """Record the AppRec's receipt (`out.receipt`) as the transport answers it."""
        ...
