"""POST /ebms: spool the body with caps, hand it on, write the reply bytes back."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from app import bodies
from app.api.errors import PROBLEM_JSON, problem
from app.bodies import BodySpool, Reservation
from app.intake.ebms.request import IntakeRequest, Reply, SpooledBody
from app.intake.service import IntakeService
from app.platform.logs import get_logger
from app.replies.binding import answer_asynchronously
from app.state import AppState

log = get_logger(__name__)

router = APIRouter(tags=["ebms"])

_EBMS_DOC = """An ebXML message (ebMS 2.0, Norwegian profile): `multipart/related; type="text/xml";
start=...` SOAP-with-attachments. The answer is HTTP 200 with a multipart/related ebXML reply:
the signed `eb:Acknowledgment` and the AppRec (Action `APPREC`), or an `eb:MessageError`;
where the sender's CPA says `syncReplyMode="none"` for the channel it sent on, an empty 200
once the message is stored, and the same reply is POSTed to the CPA's endpoint.
A body larger than `KPR_MAX_MESSAGE_BYTES` gets 413. Past `KPR_MAX_RECEIVING_BODIES` bodies
arriving at once or the spool budget (`KPR_SPOOL_BUDGET_BYTES`) the answer is 503 with
Retry-After, the body unread; a body that has not arrived whole within
`KPR_BODY_TIMEOUT_SECONDS` gets 408."""


class _TooLarge(Exception):
    def __init__(self, seen: int) -> None:
        self.seen = seen


async def _spool_capped(request: Request, cap: int, reservation: Reservation) -> SpooledBody:
    """The body into a spool, hashed as it arrives; `_TooLarge` past `cap` and
    `bodies.Refused` past the spool budget (what came so far is dropped, never held)."""
    spool = BodySpool(request.app.state.kpr.bodies.spool_dir)
    digest = hashlib.sha256()
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise _TooLarge(size)
            reservation.grow(size)  # before the chunk is written
            digest.update(chunk)
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    return SpooledBody(spool.file, size, digest.hexdigest())


@router.post(
    "/ebms",
    summary="Receive an ebXML message",
    description=_EBMS_DOC,
    response_class=Response,
    responses={
        200: {"content": {"multipart/related": {}}},
        408: {"description": "the body did not arrive in time"},
        413: {"description": "too large"},
        503: {"description": "no room for another body now: try again after Retry-After"},
    },
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
    length = int(declared) if declared is not None and declared.isdigit() else None
    if length is not None and length > settings.max_message_bytes:
        # Decided from Content-Length: the body is never read.
        return _too_large(await service.refuse_too_large(meta, length))
    try:
        reservation = state.bodies.admit(length)
    except bodies.Refused as refused:
        log.warning("intake.body_refused", reason=refused.reason, declared=length)
        return _unavailable(refused.reason)
    try:
        try:
            with anyio.fail_after(settings.body_timeout_seconds):
                spooled = await _spool_capped(request, settings.max_message_bytes, reservation)
        except _TooLarge as exc:
            reservation.release()
            return _too_large(await service.refuse_too_large(meta, exc.seen))
        except bodies.Refused as refused:
            log.warning("intake.body_refused", reason=refused.reason, received=reservation.reserved)
            return _unavailable(refused.reason)
        except TimeoutError:
            state.bodies.refused.labels("timeout").inc()
            log.warning("intake.body_timeout", seconds=settings.body_timeout_seconds)
            return _timed_out(settings.body_timeout_seconds)
        except ClientDisconnect:
            log.info("intake.body_disconnected")
            return _problem(400, "BadRequest", "Forbindelsen ble brutt før meldingen var mottatt.")
        except OSError as exc:  # the spool's disk is full or gone: a temporary failure
            state.bodies.refused.labels("disk").inc()
            log.error("intake.body_spool_failed", error_type=type(exc).__name__)
            return _unavailable("disk")
        reservation.received()
        try:
            reply = await service.receive(meta.with_spooled(spooled))
        finally:
            spooled.file.close()  # read and closed by `receive`; here if it never got there
        # the sender's CPA may ask for the reply as a message of its own (issue 26)
        if await answer_asynchronously(
            state, request_id=meta.request_id, status_code=reply.status_code
        ):
            return Response(status_code=200)
        return _response(reply)
    finally:
        reservation.release()


def _response(reply: Reply) -> Response:
    return Response(
        content=reply.body,
        status_code=reply.status_code,
        media_type=None,
        headers={"Content-Type": reply.content_type},
    )


def _too_large(detail: str) -> Response:
    """413, in the one error shape of the HTTP API (RFC 9457); an MSH logs the detail."""
    return Response(
        content=json.dumps(problem(413, "PayloadTooLarge", detail), ensure_ascii=False).encode(),
        status_code=413,
        media_type=PROBLEM_JSON,
    )


_UNAVAILABLE = {
    "receiving": "Mottaket tar imot for mange meldinger samtidig.",
    "budget": "Mottaket har ikke plass til flere meldinger akkurat nå.",
    "disk": "Mottaket kunne ikke mellomlagre meldingen.",
}


def _unavailable(reason: str) -> Response:
    """503: a temporary refusal; the body is not read (or no further), the connection closes."""
    seconds = bodies.RETRY_AFTER_SECONDS
    detail = f"{_UNAVAILABLE[reason]} Send meldingen på nytt om {seconds} sekunder."
    return _problem(503, "Unavailable", detail, {"Retry-After": str(seconds)})


def _timed_out(seconds: float) -> Response:
    detail = (
        f"Meldingen kom ikke fram i sin helhet innen {seconds:g} sekunder og er forkastet. "
        "Send den på nytt."
    )
    return _problem(408, "RequestTimeout", detail)


def _problem(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    # the connection closes: what is left of an unread body must not be taken as a request
    return Response(
        content=json.dumps(problem(status, code, detail), ensure_ascii=False).encode(),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers={**(headers or {}), "Connection": "close"},
    )
