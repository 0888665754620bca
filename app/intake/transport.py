"""The first intake step: the HTTP body read as ebXML transport (MIME parts, SOAP envelope,
ebMS header), before anything is decrypted."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from app.core.findings import Finding
from app.ebxml.checks import Receiver, check_header
from app.ebxml.envelope import EbmsHeader, ReplyContext, parse_envelope
from app.ebxml.mime import MimeMessage, parse_body

_PKCS7 = ("application/pkcs7-mime", "application/x-pkcs7-mime", "application/octet-stream")


@dataclass(frozen=True, slots=True)
class Transport:
    mime: MimeMessage | None
    header: EbmsHeader | None
    reply_context: ReplyContext
    receiver: Receiver | None
    findings: tuple[Finding, ...]
    content_sha256: str  # over the SOAP part and the payloads, independent of MIME framing


def read_transport(
    body: bytes,
    content_type: str | None,
    *,
    receivers: Mapping[str, str],
    now: datetime,
    max_parts: int,
    max_header_bytes: int,
) -> Transport:
    """MIME, SOAP, ebMS header and the pure header checks."""
    mime_result = parse_body(
        body, content_type, max_parts=max_parts, max_part_header_bytes=max_header_bytes
    )
    mime = mime_result.message
    if mime is None:
        return Transport(
            None, None, ReplyContext(), None, mime_result.findings, hashlib.sha256(body).hexdigest()
        )
    digest = hashlib.sha256(mime.soap)
    for att in mime.attachments:
        digest.update(att.content_id.encode())
        digest.update(hashlib.sha256(att.data).digest())
    env = parse_envelope(mime.soap)
    if env.header is None:
        return Transport(
            mime,
            None,
            env.reply_context,
            None,
            (*mime_result.findings, *env.findings),
            digest.hexdigest(),
        )
    checked = check_header(env.header, mime, receivers=receivers, now=now)
    return Transport(
        mime,
        env.header,
        env.reply_context,
        checked.receiver,
        (*mime_result.findings, *env.findings, *checked.findings),
        digest.hexdigest(),
    )
