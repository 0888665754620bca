"""The ebXML intake over HTTP: the one place `POST /ebms` hands a request to.

`receive` reads the transport (MIME, SOAP, ebMS header) in a worker thread, then runs the
intake core (`IntakeCore.process`, app/intake/core.py) with the ebXML binding
(`EbxmlBinding`, app/intake/ebms/binding.py), which opens the envelope, checks the CPA and
signals and wraps every answer as the ebXML reply. The core commits once, before the reply
leaves: an Acknowledgment promises the message is stored. A duplicate gets the stored reply
byte for byte. Nothing here raises to the client: an unexpected error is logged, the request
is stored as FAILED and answered with a MessageError (`EbmsReplies.store_failure`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import anyio

from app.ebxml.envelope import first_her_id
from app.intake import stages
from app.intake.core import IntakeCore
from app.intake.ebms.binding import EbxmlBinding
from app.intake.ebms.replies import EbmsReplies
from app.intake.ebms.request import IntakeRequest, Reply, loaded
from app.intake.received import PayloadProtection, ReceivedPayload, TransportAudit
from app.keyring import Keyring
from app.platform.logs import error_location, get_logger
from app.state import AppState

log = get_logger(__name__)


class IntakeService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.settings = state.settings
        self.keys: Keyring = state.keyring  # held for the request: a reload swaps the next one
        self.core = IntakeCore(state)
        self.replies = EbmsReplies(state, self.core.windows)

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
        """Read the transport, then the core with the ebXML binding."""
        transport, body_sha256 = await anyio.to_thread.run_sync(lambda: self._read(request))
        env = transport.receiver.environment if transport.receiver else "unknown"
        binding = EbxmlBinding(self.state, self.keys, self.replies, request, transport, body_sha256)
        outcome = await self.core.process(_received(request, transport), binding)
        if binding.reply is None:
            # answered as an internal error: stored whole, and the sender sends it again later
            raise RuntimeError(f"no reply: {outcome.kind} ({outcome.condition})")
        return binding.reply, outcome.status or "unknown", env

    def _read(self, request: IntakeRequest) -> tuple[stages.Transport, str]:
        """MIME, SOAP and the ebMS header, and the body's hash (in a worker thread: 50 MB of
        SHA-256 must not run on the event loop)."""
        s = self.settings
        transport = stages.read_transport(
            request.body,
            request.content_type,
            receivers=self.core.receivers,
            now=request.received_at,
            max_parts=s.max_mime_parts,
            max_header_bytes=s.max_header_bytes,
        )
        return transport, request.body_sha256 or hashlib.sha256(request.body).hexdigest()


def _received(request: IntakeRequest, transport: stages.Transport) -> ReceivedPayload:
    """The request as the core's `ReceivedPayload`: the ebXML header's ids, the whole body."""
    header = transport.header
    ctx = transport.reply_context
    return ReceivedPayload(
        transport=request.transport,
        transport_message_id=header.message_id if header is not None else ctx.message_id or "",
        from_her_id=first_her_id(header.from_party.party_ids) if header is not None else None,
        to_her_id=first_her_id(header.to_party.party_ids) if header is not None else None,
        cpa_id=header.cpa_id if header is not None else ctx.cpa_id,
        received_at=request.received_at,
        payload=request.body,
        protection=PayloadProtection.EBXML_ENVELOPED_XMLDSIG,
        audit=TransportAudit(
            remote_addr=request.remote_addr,
            request_id=request.request_id,
            content_type=request.content_type,
        ),
        action=header.action if header is not None else None,
    )
