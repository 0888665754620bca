"""What the intake asks of the revocation sources: the CRLs (and OCSP answers) to check
against, and, for a signer whose issuer has no usable CRL, a word to the background refresher.
Nothing here waits for the network: a message that cannot be checked gets the temporary
DeliveryFailure at once and its MSH resends after the refresher has fetched."""

from __future__ import annotations

from datetime import UTC, datetime

from app.intake.stages import Opened
from app.keyring import Keyring
from app.revocation.crls import chained, distribution_points
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


def request_refresh(state: AppState, opened: Opened) -> bool:
    """The signers' revocation status was unavailable: learn their distribution points (only
    from signers that chain to a trust anchor) and wake the refresher; ask their OCSP
    responders in the background. Never waits; True when something was set going."""
    sources = state.revocation
    if sources is None:
        return False
    now = datetime.now(UTC)
    anchors = state.keyring.trust_anchors
    signers = [c for c in (opened.envelope_signer, opened.document_signer) if c is not None]
    trusted = chained(signers, anchors, now)
    urls = [u for cert in trusted for u in distribution_points(cert)]
    started = bool(sources.add_urls(urls))
    if sources.needs(urls, now):
        sources.wake.set()  # the refresher fetches what is due (the back-off still applies)
        started = True
    for cert in trusted:
        started = sources.ocsp.ask_later(cert, anchors) or started
    return started
