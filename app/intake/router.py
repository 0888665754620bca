"""POST /ebms: spool the body with caps, hand it on, write the reply bytes back."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.intake.service import IntakeRequest, IntakeService, SpooledBody
from app.security import cms
from app.state import AppState

router = APIRouter(tags=["ebms"])

_EBMS_DOC = """An ebXML message (ebMS 2.0, Norwegian profile): `multipart/related; type="text/xml";
start=...` SOAP-with-attachments. The answer is HTTP 200 with a multipart/related ebXML reply:
the signed `eb:Acknowledgment` and the AppRec (Action `APPREC`), or an `eb:MessageError`.
A body larger than `KPR_MAX_MESSAGE_BYTES` gets 413."""


# A body past this is written to disk as it arrives: uploads waiting for an intake slot (a
# deadline day's hundreds of 10 MB messages) hold no memory meanwhile.
BODY_SPOOL_BYTES = 1024 * 1024


class _TooLarge(Exception):
    def __init__(self, seen: int) -> None:
        self.seen = seen


async def _spool_capped(request: Request, cap: int) -> SpooledBody:
    """The body into a spool, hashed as it arrives; `_TooLarge` past `cap` (what came so far
    is dropped, never held)."""
    spool = cms.new_spool(BODY_SPOOL_BYTES)
    digest = hashlib.sha256()
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise _TooLarge(size)
            digest.update(chunk)
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    return SpooledBody(spool, size, digest.hexdigest())


@router.post(
    "/ebms",
    summary="Receive an ebXML message",
    description=_EBMS_DOC,
    response_class=Response,
    responses={200: {"content": {"multipart/related": {}}}, 413: {"description": "too large"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"multipart/related": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def receive_ebms(request: Request) -> Response:
    state: AppState = request.app.state.kpr
    settings = state.settings
    received_at = datetime.now(UTC)
    service = IntakeService(state)
    meta = IntakeRequest(
        body=b"",
        content_type=request.headers.get("content-type"),
        soap_action=request.headers.get("soapaction"),
        remote_addr=request.client.host if request.client else None,
        request_id=request.scope.get("state", {}).get("request_id", ""),
        received_at=received_at,
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.max_message_bytes:
        # Decided from Content-Length: the body is never read.
        reply = await service.refuse_too_large(meta, int(declared))
    else:
        try:
            spooled = await _spool_capped(request, settings.max_message_bytes)
        except _TooLarge as exc:
            reply = await service.refuse_too_large(meta, exc.seen)
        else:
            try:
                reply = await service.receive(meta.with_spooled(spooled))
            finally:
                spooled.file.close()  # read and closed by `receive`; here if it never got there
    return Response(
        content=reply.body,
        status_code=reply.status_code,
        media_type=None,
        headers={"Content-Type": reply.content_type},
    )
