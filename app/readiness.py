"""What /readyz reports beside the database: the state of each CRL source.

A stale or expired CRL does not make the instance unready: every instance shares the CA, so
taking them all out of the load balancer would turn a temporary DeliveryFailure for one issuer
into an outage for all senders. It is in the detail (and `kpr_crl_stale`) for alerting.
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
    report = state.revocation.report(datetime.now(UTC))
    if not report:  # no distribution point known: nothing to say
        return {}
    worst = "ok"
    for entry in report.values():
        if entry["state"] != "ok":
            worst = "degraded"
    return {"crl": worst, "crls": report}
