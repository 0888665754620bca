"""What the intake asks of the revocation sources: the CRLs (and OCSP answers) to check
against, and for a signer whose issuer has no current CRL yet a fetch of its distribution
point, else its OCSP responder."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from app.intake.stages import Opened
from app.keyring import Keyring
from app.revocation.crls import distribution_points
from app.security.certificates import TrustStore
from app.state import AppState


def trust_store(state: AppState, keys: Keyring) -> TrustStore:
    sources = state.revocation
    if sources is None:
        return TrustStore(anchors=keys.trust_anchors, crls=keys.crls)
    return TrustStore(
        anchors=keys.trust_anchors,
        crls=(*keys.crls, *sources.crls()),
        ocsp=sources.ocsp.current(datetime.now(UTC)),
    )


async def fetch_for(state: AppState, opened: Opened) -> bool:
    """Fetch the CRLs of the signers' distribution points that are missing or expired; True
    when one was accepted (the caller checks again). Bounded by the fetch timeout."""
    sources = state.revocation
    if sources is None or sources.client is None:
        return False
    signers = [c for c in (opened.envelope_signer, opened.document_signer) if c is not None]
    urls = [u for cert in signers for u in distribution_points(cert)]
    sources.add_urls(urls)
    now = datetime.now(UTC)
    # Only signers whose certificate was otherwise accepted (pinned, or issued by an anchor)
    # get here, so the URLs are the CA's; one attempt per URL per retry period.
    wanted = [u for u in dict.fromkeys(urls) if sources.wants_fetch(u, now)]
    client = sources.client
    results = await asyncio.gather(*(sources.fetch(u, client) for u in wanted))
    if any(results):
        return True
    # No CRL to be had: ask the signers' OCSP responders, where they name one.
    anchors = state.keyring.trust_anchors
    asked = await asyncio.gather(*(sources.ocsp.ask(c, anchors, client) for c in signers))
    return any(asked)
