"""What the intake asks of the revocation sources: the CRLs to check against, and a fetch
for a signer whose issuer has no current CRL yet (its distribution point seen first here)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from app.intake.stages import Opened
from app.keyring import Keyring
from app.revocation.crls import distribution_points
from app.security.certificates import TrustStore
from app.state import AppState


def trust_store(state: AppState, keys: Keyring) -> TrustStore:
    fetched = state.revocation.crls() if state.revocation is not None else ()
    return TrustStore(anchors=keys.trust_anchors, crls=(*keys.crls, *fetched))


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
    if not wanted:
        return False
    client = sources.client
    results = await asyncio.gather(*(sources.fetch(u, client) for u in wanted))
    return any(results)
