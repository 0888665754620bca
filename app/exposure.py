"""What may be reached from where (issue 20, "unsafe defaults"): serving beyond loopback
needs an explicit KPR_ENV; the dev mail sink answers loopback clients only."""

from __future__ import annotations

import hmac
import ipaddress

from app.platform.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str | None) -> bool:
    """An address (or `localhost`) that only this machine reaches. Anything else, a name
    included, counts as reachable from outside."""
    if not host:
        return False
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def serve_refusal(host: str, settings: Settings) -> str | None:
    """Why `serve --host HOST` must not start, or None. KPR_ENV defaults to dev (dev PKI
    fallbacks, the unauthenticated mail sink): a forgotten setting must not put that on a
    network."""
    if is_loopback(host) or settings.env_explicit:
        return None
    return (
        f"refusing to serve on {host} without an explicit KPR_ENV: the default is dev "
        "(development PKI fallbacks, /dev/mail). Set KPR_ENV=production for a deployment, "
        "or KPR_ENV=dev/test on purpose, or serve on 127.0.0.1."
    )


def metrics_allowed(settings: Settings, authorization: str | None) -> bool:
    """/metrics is open unless KPR_METRICS_TOKEN is set; then only `Bearer <that token>`,
    compared in constant time."""
    if settings.metrics_token is None:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    expected = settings.metrics_token.get_secret_value()
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    )
