"""What /readyz reports beside the database: how many CRL sources are in each state.

A stale or expired CRL does not make the instance unready: every instance shares the CA, so
taking them all out of the load balancer would turn a temporary DeliveryFailure for one issuer
into an outage for all senders. It is in the detail (and `kpr_crl_sources{state}`) for
alerting. Only counts: /readyz is not authenticated, and the URLs and fetch errors come from
certificates and other people's servers (operators read them at GET /api/v1/revocation).
"""

from __future__ import annotations

from datetime import UTC, datetime

from app.state import AppState

# A database that does not answer within this is as good as down (a hung server, a network
# partition): the probe must answer before the orchestrator's own timeout.
READY_TIMEOUT_SECONDS = 3.0


def readiness_detail(state: AppState) -> dict[str, object]:
    if state.revocation is None:
        return {}
    counts = state.revocation.counts(datetime.now(UTC))
    if not any(counts.values()):  # no distribution point known: nothing to say
        return {}
    worst = "ok" if counts["ok"] == sum(counts.values()) else "degraded"
    return {"crl": worst, "crls": counts}
