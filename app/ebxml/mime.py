"""SOAP-with-attachments MIME parsing (multipart/related), binary-safe.

The stdlib `email` parser is binary-exact but line-oriented: measured on a 50 MB message it
took ~2.0 s (binary part) and ~1.7 s (base64 part), against ~0.05 s and ~0.17 s for splitting
on the boundary with `bytes.find`. So the body is split here by hand, and `email` is only used
for what it is good at: the small header blocks and their parameters (quoting, folding, case).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from app.core.cid import normalize_cid
from app.core.findings import Finding, Rule
from app.ebxml import rules

DEFAULT_MAX_PARTS = 16
DEFAULT_MAX_PART_HEADER_BYTES = 16 * 1024
_MAX_BOUNDARY_LEN = 200  # RFC 2046 says 70; be lenient with real MSHs, but bounded
_SOAP_MEDIA_TYPES = frozenset({"text/xml", "application/xml"})
_IDENTITY_CTES = frozenset({"7bit", "8bit", "binary"})
_WS_TAIL = re.compile(rb"[ \t]*\r?\n")


@dataclass(frozen=True, slots=True)
class Attachment:
    content_id: str  # normalised (app.core.cid): without angle brackets or cid:
    content_type: str  # the full header value, parameters included
    media_type: str  # lower-case type/subtype
    data: bytes  # after Content-Transfer-Encoding decoding


@dataclass(frozen=True, slots=True)
class MimeMessage:
    """A parsed SOAP-with-attachments message.

    `soap` is the start part after CTE decoding: exactly the bytes the envelope signature
    covers. `attachments` keep the order of the MIME parts.
    """

    soap: bytes
    soap_content_id: str | None
    soap_content_type: str
    attachments: tuple[Attachment, ...]

    def attachment(self, content_id: str) -> Attachment | None:
        key = normalize_cid(content_id)
        for a in self.attachments:
            if a.content_id == key:
                return a
        return None

    @property
    def attachment_map(self) -> dict[str, bytes]:
        """Content id -> decoded bytes, the shape a signature verifier or signer wants."""
        return {a.content_id: a.data for a in self.attachments}


@dataclass(frozen=True, slots=True)
class MimeResult:
    message: MimeMessage | None
    findings: tuple[Finding, ...]


def _fail(rule_: Rule, location: str, detail: str) -> MimeResult:
    return MimeResult(None, (finding(rule_, location, detail),))


def finding(rule_: Rule, location: str, detail: str) -> Finding:
    return Finding(rule=rule_, location=location, detail=detail)


def _header_message(value: str) -> Message:
    msg = Message(policy=compat32)
    msg["Content-Type"] = value
    return msg


def _param(msg: Message, name: str) -> str | None:
    value = msg.get_param(name, header="Content-Type")
    if value is None or isinstance(value, tuple):
        # RFC 2231 continuation tuples are not used by any MSH; treat as absent.
        return None
    return str(value)


def _shorten(value: str, limit: int = 80) -> str:
    value = value.encode("ascii", "backslashreplace").decode("ascii")
    return value if len(value) <= limit else value[:limit] + "..."


def parse_body(
    body: bytes,
    content_type: str | None,
    *,
    max_parts: int = DEFAULT_MAX_PARTS,
    max_part_header_bytes: int = DEFAULT_MAX_PART_HEADER_BYTES,
) -> MimeResult:
    """Parse an HTTP body given its Content-Type header value.

    `multipart/related` (SOAP with attachments) or a bare `text/xml` envelope. Never raises
    for bad input: problems come back as findings and `message` is None.
    """
    if not content_type or not content_type.strip():
        return _fail(
            rules.MIME_CONTENT_TYPE,
            "Content-Type",
            'Content-Type mangler. Send meldingen som multipart/related; type="text/xml" '
            "med SOAP-konvolutten som startdel.",
        )
    try:
        top = _header_message(content_type)
        media_type = top.get_content_type()
    except Exception:  # header parsing of hostile input; report, never raise
        media_type = ""
    if media_type in _SOAP_MEDIA_TYPES:
        return MimeResult(MimeMessage(body, None, content_type.strip(), ()), ())
    if media_type != "multipart/related":
        return _fail(
            rules.MIME_CONTENT_TYPE,
            "Content-Type",
            f"Content-Type '{_shorten(content_type)}' støttes ikke. Bruk multipart/related; "
            'type="text/xml" (SOAP med vedlegg) eller text/xml.',
        )
    boundary = _param(top, "boundary")
    if not boundary or len(boundary) > _MAX_BOUNDARY_LEN:
        return _fail(
            rules.MIME_BOUNDARY,
            "Content-Type",
            "Parameteren boundary mangler eller er ugyldig i Content-Type. Oppgi boundary "
            "(1-70 tegn) slik RFC 2046 krever.",
        )
    start = _param(top, "start")
    try:
        raw_parts = _split(body, boundary.encode("utf-8", "surrogateescape"), max_parts)
    except _SplitError as exc:
        return _fail(exc.rule, "body", exc.detail)
    return _assemble(raw_parts, normalize_cid(start) if start else None, max_part_header_bytes)


class _SplitError(Exception):
    def __init__(self, rule_: Rule, detail: str) -> None:
        super().__init__(detail)
        self.rule = rule_
        self.detail = detail


def _split(body: bytes, boundary: bytes, max_parts: int) -> list[bytes]:
    """The parts between the delimiters, without the CRLF that belongs to each delimiter."""
    delim = b"--" + boundary
    parts: list[bytes] = []
    # The first delimiter may open the body or follow a preamble line.
    pos = 0 if body.startswith(delim) else _find_delim(body, delim, 0)
    if pos < 0:
        raise _SplitError(
            rules.MIME_BOUNDARY,
            "Fant ingen MIME-grense i meldingen som stemmer med boundary i Content-Type. "
            "Kontroller at boundary-parameteren og skillelinjene i meldingen er like.",
        )
    body_start = pos + len(delim)
    while True:
        if body[body_start : body_start + 2] == b"--":
            return parts
        tail = _WS_TAIL.match(body, body_start)
        if tail is None:
            # Defensive: _find_delim only returns delimiters followed by a line end or "--".
            raise _SplitError(rules.MIME_BOUNDARY, "Ugyldig MIME-skillelinje.")
        content_start = tail.end()
        nxt = _find_delim(body, delim, content_start)
        if nxt < 0:
            raise _SplitError(
                rules.MIME_BOUNDARY,
                "Den avsluttende MIME-grensen (--boundary--) mangler. Meldingen er trolig "
                "avkortet; send den på nytt i sin helhet.",
            )
        end = nxt - 1  # the LF before the delimiter belongs to it
        if end > content_start and body[end - 1 : end] == b"\r":
            end -= 1
        parts.append(body[content_start : max(end, content_start)])
        if len(parts) > max_parts:
            raise _SplitError(
                rules.MIME_TOO_MANY_PARTS,
                f"Meldingen har flere enn {max_parts} MIME-deler. Send SOAP-konvolutten og "
                "nyttelasten (normalt én del) uten ekstra vedlegg.",
            )
        body_start = nxt + len(delim)


def _find_delim(body: bytes, delim: bytes, start: int) -> int:
    """Index of the next delimiter line (at a line start, followed by '--' or a line end)."""
    needle = b"\n" + delim
    pos = start - 1 if start > 0 else 0
    while True:
        hit = body.find(needle, pos)
        if hit < 0:
            return -1
        after = hit + len(needle)
        if body[after : after + 2] == b"--" or _WS_TAIL.match(body, after):
            return hit + 1
        pos = hit + 1


def _split_headers(part: bytes, cap: int) -> tuple[bytes, bytes] | None:
    if part.startswith((b"\r\n", b"\n")):
        return b"", part[2:] if part.startswith(b"\r\n") else part[1:]
    window = cap + 4
    crlf = part.find(b"\r\n\r\n", 0, window)
    lf = part.find(b"\n\n", 0, window)
    candidates = [(i, 4) for i in (crlf,) if i >= 0] + [(i, 2) for i in (lf,) if i >= 0]
    if not candidates:
        if len(part) <= window:
            # Headers only, no body at all: accept as an empty body.
            return part, b""
        return None
    idx, sep = min(candidates)
    if idx > cap:
        return None
    return part[:idx], part[idx + sep :]


def _decode(cte: str, data: bytes) -> bytes:
    if cte in _IDENTITY_CTES:
        return data
    if cte == "base64":
        # Non-strict: line breaks and whitespace are ignored, bad padding raises.
        return binascii.a2b_base64(data)
    if cte == "quoted-printable":
        return binascii.a2b_qp(data)
    raise LookupError(cte)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Part:
    """One MIME part with its headers read and its content decoded."""

    index: int  # 1-based, as the findings name it
    content_id: str | None  # normalised
    content_type: str
    media_type: str
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class _Attachments:
    attachments: tuple[Attachment, ...]
    findings: tuple[Finding, ...]


def _assemble(raw_parts: list[bytes], start: str | None, header_cap: int) -> MimeResult:
    parser = BytesHeaderParser(policy=compat32)
    read = [_read_part(index, raw, header_cap, parser) for index, raw in enumerate(raw_parts, 1)]
    refused = tuple(r for r in read if isinstance(r, Finding))
    if refused:
        return MimeResult(None, refused)
    parts = [r for r in read if isinstance(r, _Part)]
    root = _start_part(parts, start)
    if isinstance(root, MimeResult):
        return root
    others = _attachments(parts, root)
    if others.findings:
        return MimeResult(None, others.findings)
    message = MimeMessage(root.data, root.content_id, root.content_type, others.attachments)
    return MimeResult(message, ())


def _read_part(
    index: int, raw: bytes, header_cap: int, parser: BytesHeaderParser
) -> _Part | Finding:
    """A part's headers and decoded content, or why it cannot be read."""
    loc = f"MIME-del {index}"
    split = _split_headers(raw, header_cap)
    if split is None:
        return finding(
            rules.MIME_PART_MALFORMED,
            loc,
            f"Hodene i MIME-del {index} er større enn {header_cap} byte eller mangler "
            "tom linje før innholdet. Skill hodene fra innholdet med en tom linje.",
        )
    head, content = split
    try:
        hdrs = parser.parsebytes(head)
        ctype_raw = hdrs.get("Content-Type")
        ctype = str(ctype_raw) if ctype_raw is not None else "text/plain"
        media = hdrs.get_content_type() if ctype_raw is not None else "text/plain"
        cid_raw = hdrs.get("Content-ID")
        cid = normalize_cid(str(cid_raw)) if cid_raw is not None else None
        cte_raw = hdrs.get("Content-Transfer-Encoding")
        cte = str(cte_raw).strip().lower() if cte_raw is not None else "binary"
    except Exception:  # hostile header bytes; report, never raise
        return finding(
            rules.MIME_PART_MALFORMED,
            loc,
            f"Hodene i MIME-del {index} kan ikke leses. Bruk standard MIME-hoder "
            "(Content-Type, Content-ID, Content-Transfer-Encoding).",
        )
    data = _decode_part(index, cte, content)
    if isinstance(data, Finding):
        return data
    return _Part(
        index=index, content_id=cid or None, content_type=ctype.strip(), media_type=media, data=data
    )


def _decode_part(index: int, cte: str, content: bytes) -> bytes | Finding:
    try:
        return _decode(cte, content)
    except LookupError:
        return finding(
            rules.MIME_CTE_UNSUPPORTED,
            f"MIME-del {index}",
            f"Content-Transfer-Encoding '{_shorten(cte)}' i MIME-del {index} støttes "
            "ikke. Bruk binary, 8bit, 7bit, base64 eller quoted-printable.",
        )
    except (binascii.Error, ValueError):
        return finding(
            rules.MIME_CTE_INVALID,
            f"MIME-del {index}",
            f"MIME-del {index} kan ikke dekodes som {cte}. Kontroller kodingen av delen.",
        )


def _start_part(parts: Sequence[_Part], start: str | None) -> _Part | MimeResult:
    """The root part (the SOAP envelope), or the refusal when there is none fit to be it."""
    if not parts:
        return _fail(
            rules.MIME_START_MISSING,
            "body",
            "Meldingen har ingen MIME-deler. Startdelen skal være SOAP-konvolutten.",
        )
    # RFC 2387: without a start parameter the first part is the root.
    root = parts[0] if start is None else next((p for p in parts if p.content_id == start), None)
    if root is None:
        return _fail(
            rules.MIME_START_MISSING,
            "Content-Type/start",
            f"Ingen MIME-del har Content-ID <{_shorten(start or '')}> som start-parameteren "
            "angir. Sett Content-ID på SOAP-delen lik start-parameteren.",
        )
    if root.media_type not in _SOAP_MEDIA_TYPES:
        return _fail(
            rules.MIME_START_TYPE,
            f"MIME-del {root.index}",
            f"Startdelen har Content-Type '{_shorten(root.content_type)}'. SOAP-konvolutten "
            "skal sendes som text/xml.",
        )
    return root


def _attachments(parts: Sequence[_Part], root: _Part) -> _Attachments:
    """Every part but the root, each with a Content-ID of its own."""
    seen: set[str] = {root.content_id} if root.content_id is not None else set()
    attachments: list[Attachment] = []
    findings: list[Finding] = []
    for part in parts:
        if part is root:
            continue
        loc = f"MIME-del {part.index}"
        cid = part.content_id
        if cid is None:
            findings.append(
                finding(
                    rules.MIME_CID_MISSING,
                    loc,
                    f"MIME-del {part.index} mangler Content-ID, så eb:Manifest kan ikke "
                    "referere den. Gi hver del en unik Content-ID.",
                )
            )
        elif cid in seen:
            findings.append(
                finding(
                    rules.MIME_CID_DUPLICATE,
                    loc,
                    f"Content-ID <{_shorten(cid)}> brukes av flere MIME-deler. Gi hver del en "
                    "unik Content-ID.",
                )
            )
        else:
            seen.add(cid)
            attachments.append(Attachment(cid, part.content_type, part.media_type, part.data))
    return _Attachments(attachments=tuple(attachments), findings=tuple(findings))


def parse_eml(
    data: bytes,
    *,
    max_parts: int = DEFAULT_MAX_PARTS,
    max_part_header_bytes: int = DEFAULT_MAX_PART_HEADER_BYTES,
    max_header_bytes: int = 256 * 1024,
) -> MimeResult:
    """Parse a whole RFC 5322 message (headers + body), as an MSH sends it over SMTP."""
    split = _split_headers(data, max_header_bytes)
    if split is None:
        return _fail(
            rules.MIME_PART_MALFORMED,
            "e-posthoder",
            "E-posthodene er for store eller mangler tom linje før innholdet.",
        )
    head, body = split
    try:
        hdrs = BytesHeaderParser(policy=compat32).parsebytes(head)
        ctype_raw = hdrs.get("Content-Type")
        ctype = " ".join(str(ctype_raw).split()) if ctype_raw is not None else None
        cte_raw = hdrs.get("Content-Transfer-Encoding")
        cte = str(cte_raw).strip().lower() if cte_raw is not None else "7bit"
    except Exception:  # hostile header bytes; report, never raise
        return _fail(rules.MIME_PART_MALFORMED, "e-posthoder", "E-posthodene kan ikke leses.")
    if ctype is not None and _header_message(ctype).get_content_type() in _SOAP_MEDIA_TYPES:
        # A single-part mail: the transfer encoding applies to the envelope itself.
        try:
            body = _decode(cte, body)
        except (LookupError, binascii.Error, ValueError):
            return _fail(
                rules.MIME_CTE_INVALID,
                "e-posthoder",
                f"Innholdet kan ikke dekodes som '{_shorten(cte)}'.",
            )
    return parse_body(body, ctype, max_parts=max_parts, max_part_header_bytes=max_part_header_bytes)
