"""CMS (PKCS#7) DER helpers shared by the EnvelopedData and SignedData code: DER from PEM or
base64, a ContentInfo of an expected type, findings located at "CMS".
"""

from __future__ import annotations

import base64
import binascii
import re

from asn1crypto import cms as asn1_cms

from app.core.findings import Finding, Rule


def _finding(rule: Rule, detail: str, location: str = "CMS") -> Finding:
    return Finding(rule=rule, location=location, detail=detail)


_PEM_RE = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----(.*?)-----END [A-Z0-9 ]+-----", re.S)


def to_der(data: bytes) -> bytes:
    """DER from DER, PEM (PKCS7/CMS armour) or bare base64; raises ValueError otherwise."""
    if data[:1] == b"\x30":
        return data  # never strip DER: its last bytes may well be whitespace values
    stripped = data.strip()
    match = _PEM_RE.search(stripped)
    body = match.group(1) if match else stripped
    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError("neither DER, PEM nor base64") from exc
    if der[:1] != b"\x30":
        raise ValueError("not a DER structure")
    return der


def _load_content_info(data: bytes, expected: str) -> asn1_cms.ContentInfo:
    der = to_der(data)
    info = asn1_cms.ContentInfo.load(der, strict=True)
    content_type = info["content_type"].native
    if content_type != expected:
        raise ValueError(f"content type {content_type}, expected {expected}")
    info["content"].native  # noqa: B018 - force the lazy parse so errors surface here
    return info


def _malformed_detail(exc: Exception) -> str:
    return f"Vedlegget kan ikke leses som CMS EnvelopedData ({exc})."
