"""Property: whatever bytes arrive at POST /ebms, the answer is an ebXML reply (or 413), never
a 500, and exactly one audit row is written per request. Besides bytes flipped, cut and
inserted anywhere, a bit flipped inside the signer's certificate (base64 in ds:KeyInfo): a
damaged subject or version once reached the steps as an internal error.

`make fuzz` runs the same property for FUZZ_EXAMPLES cases (default 100 000 there) on SQLite;
`make test` and `make test-all` run it with the budget written here."""

from __future__ import annotations

import base64
import os
import re

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.dev.devpki import DevPki, dev_pki
from app.models import Message
from tests.budgets import examples
from tests.integration.messages import epj_message

_PKI: DevPki | None = None


def _base() -> tuple[bytes, dict[str, str]]:
    global _PKI
    if _PKI is None:
        from datetime import UTC, datetime

        _PKI = dev_pki(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0))
    built = epj_message(_PKI)
    return built.body, dict(built.http_headers)


_BASE = _base()

# The long run's count when FUZZ_EXAMPLES is set (`make fuzz`), else the tier's budget.
_FUZZ_EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "").strip()
_BUDGET = int(_FUZZ_EXAMPLES) if _FUZZ_EXAMPLES else examples(200)

# the signer's certificate in the envelope's ds:KeyInfo: its DER, and where its base64 is
_CERT = re.search(rb"<ds:X509Certificate>(.*?)</ds:X509Certificate>", _BASE[0], re.S)
assert _CERT is not None
_CERT_DER = base64.b64decode(_CERT.group(1))

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(_BASE[0]) - 1), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, len(_BASE[0])), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, len(_BASE[0])), st.integers(0, 255)),
)
# Raw header bytes as a client could send them (no CR/LF: those would end the header).
header_value = st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def _with_certificate_flipped(body: bytes, flip: tuple[int, int] | None) -> bytes:
    """`body` with the signer's certificate's byte `at` XORed with `mask` (same length: the
    byte positions of the other mutations stay where they were)."""
    if flip is None:
        return body
    at, mask = flip
    der = bytearray(_CERT_DER)
    der[at] ^= mask
    assert _CERT is not None
    flipped = base64.encodebytes(bytes(der)).strip()
    return body[: _CERT.start(1)] + flipped + body[_CERT.end(1) :]


def _mutate(body: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(body)
    for op, at, value in ops:
        at = min(at, len(data))
        if op == "flip" and at < len(data):
            data[at] ^= value
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = bytes([value])
    return bytes(data)


async def _count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(Message)) or 0)


@settings(max_examples=_BUDGET, suppress_health_check=list(HealthCheck))
@given(
    ops=st.lists(mutation, max_size=4),
    content_type=st.none() | header_value,
    certificate_flip=st.none() | st.tuples(st.integers(0, len(_CERT_DER) - 1), st.integers(1, 255)),
)
async def test_any_mutation_gets_an_answer_and_one_audit_row(
    intake: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    ops: list[tuple[str, int, int]],
    content_type: bytes | None,
    certificate_flip: tuple[int, int] | None,
) -> None:
    body, base_headers = _BASE
    headers = [(k.lower().encode(), v.encode()) for k, v in base_headers.items()]
    if content_type is not None:
        headers = [(k, v) for k, v in headers if k != b"content-type"]
        headers.append((b"content-type", content_type))
    before = await _count(sessions)
    content = _mutate(_with_certificate_flipped(body, certificate_flip), ops)
    r = await intake.post("/ebms", content=content, headers=headers)
    assert r.status_code in (200, 413)
    assert b"EBMS-INTERNAL-ERROR" not in r.content
    assert await _count(sessions) == before + 1
