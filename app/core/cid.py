"""The one Content-ID normalisation (RFC 2392), used by MIME parsing, the Manifest check, the
payload choice and the signature's `cid:` references alike.

Two spellings that name the same part must be the same key everywhere: if parsing, signature
verification and payload selection compared differently, a second part that normalises to the
signed part's id could be verified under one name and processed under another.
"""

from __future__ import annotations

from urllib.parse import quote, unquote


def normalize_cid(content_id: str) -> str:
    """`<a@b>`, `a@b`, `cid:a@b` and `cid:a%40b` all name the part `a@b` (RFC 2392). A
    Content-ID header written `<cid:a@b>` also normalises to `a@b`: it then collides with a
    part `<a@b>`, and colliding parts are refused rather than told apart."""
    value = content_id.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    if value[:4].lower() == "cid:":
        value = unquote(value[4:])
    return value.strip()


def cid_uri(content_id: str) -> str:
    """The `cid:` URI of a Content-ID, percent-encoded per RFC 2392."""
    return "cid:" + quote(normalize_cid(content_id), safe="@!$&'()*+,;=:-._~")
