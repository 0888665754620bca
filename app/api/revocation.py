"""GET /api/v1/revocation: the CRL distribution points and OCSP answers the server holds, with
the URLs, states, last errors and next attempts (operators). The public endpoints (/readyz,
/metrics) only count: the URLs come from certificates and the errors from other servers."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from app.api.deps import Operator
from app.api.problems import PROBLEM_RESPONSES
from app.http_deps import app_state

router = APIRouter(prefix="/api/v1", tags=["revocation"], responses=PROBLEM_RESPONSES)


class CrlSourceOut(BaseModel):
    url: str
    state: str = Field(description="ok, stale, expired or missing")
    this_update: dt.datetime | None
    next_update: dt.datetime | None
    crl_number: int | None
    fetched_at: dt.datetime | None = Field(description="when the CRL held was accepted")
    last_attempt_at: dt.datetime | None
    last_outcome: str | None = Field(description="new, unchanged, failed, shared or busy")
    last_error: str | None
    failures: int = Field(description="failed attempts in a row")
    next_attempt_at: dt.datetime
    fetching: bool


class OcspAnswerOut(BaseModel):
    issuer: str
    serial: str = Field(description="hexadecimal")
    revoked: bool
    this_update: dt.datetime
    next_update: dt.datetime | None


class RevocationOut(BaseModel):
    crl_sources: list[CrlSourceOut]
    ocsp_answers: list[OcspAnswerOut]


@router.get("/revocation", response_model=RevocationOut, summary="CRL sources and OCSP (operators)")
async def get_revocation(request: Request, _who: Operator) -> RevocationOut:
    """Every distribution point known (configured, or from a certificate that chains to a
    trust anchor) with its state, and the OCSP answers held."""
    sources = app_state(request).revocation
    if sources is None:
        return RevocationOut(crl_sources=[], ocsp_answers=[])
    now = dt.datetime.now(dt.UTC)
    return RevocationOut(
        crl_sources=[CrlSourceOut.model_validate(entry) for entry in sources.report(now)],
        ocsp_answers=[
            OcspAnswerOut(
                issuer=a.issuer.rfc4514_string(),
                serial=f"{a.serial:x}",
                revoked=a.revoked,
                this_update=a.this_update,
                next_update=a.next_update,
            )
            for a in sources.ocsp.current(now)
        ],
    )
