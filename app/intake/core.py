"""The transport-independent intake core: one entry point, `IntakeCore.process`, that takes
a `ReceivedPayload` (whatever transport brought it) and returns a `CoreOutcome`.

The steps, in order: registered party -> open the payload (decryption and the business
signature, as its `PayloadProtection` says) -> dedup by (sender, transport message id) ->
MsgHead and content -> AppRec -> history, register store and email -> the one commit. The
transport (ebXML over HTTP, AMQP, ebXML over SMTP) reads its own framing before and wraps
the outcome in its own reply after; nothing here knows any of them."""

from __future__ import annotations

from app.intake.received import CoreOutcome, ReceivedPayload
from app.state import AppState


class IntakeCore:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def process(self, received: ReceivedPayload) -> CoreOutcome:
        """Check, store and answer one received payload; commits once, before it returns."""
        raise NotImplementedError(received.protection)
