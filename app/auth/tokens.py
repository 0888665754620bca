"""API tokens: random, shown once, stored as SHA-256 (they carry 256 bits of entropy, so a
plain hash is enough; no password stretching needed). The roles and the principal a request
acts as; the SQL is in `app.auth.repository`."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

TOKEN_PREFIX = "kpr_"  # noqa: S105 - a prefix, not a secret
_ROLE = re.compile(r"^(operator|register|municipality:(\d{4}))$")
# A read must not become a write per request: the last use is recorded this coarsely.
LAST_USED_RESOLUTION = timedelta(minutes=5)
# `tokens create --expires`: a date (valid through that day, Norwegian time) or days
_DAYS = re.compile(r"^([0-9]{1,5})d$")
_OSLO = ZoneInfo("Europe/Oslo")
# A credential that outlives its holder's role is the risk expiry exists for: at most 5 years.
MAX_TOKEN_LIFETIME = timedelta(days=5 * 366)


class TokenRole(StrEnum):
    OPERATOR = "operator"
    MUNICIPALITY = "municipality"  # with its kommunenr
    # KPR's loader: reads the register feed and nothing else (docs/register-feed.md)
    REGISTER = "register"


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    token_id: int
    name: str
    role: TokenRole
    kommune_nr: str | None

    @property
    def is_operator(self) -> bool:
        return self.role is TokenRole.OPERATOR

    @property
    def is_register(self) -> bool:
        return self.role is TokenRole.REGISTER

    def may_read_kommune(self, kommune_nr: str | None) -> bool:
        return self.is_operator or (kommune_nr is not None and kommune_nr == self.kommune_nr)

    @property
    def label(self) -> str:
        return self.role if self.kommune_nr is None else f"{self.role}:{self.kommune_nr}"


def parse_role(role: str) -> tuple[TokenRole, str | None]:
    """'operator', 'register' or 'municipality:<kommunenr>' -> (role, kommune_nr)."""
    match = _ROLE.match(role)
    if not match:
        raise ValueError(
            f"unknown role '{role}': use 'operator', 'register' or "
            "'municipality:<4-digit kommunenr>'"
        )
    if match.group(2):
        return TokenRole.MUNICIPALITY, match.group(2)
    return TokenRole(match.group(1)), None


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_expiry(value: str, now: datetime) -> datetime:
    """`--expires`: `2027-12-31` (valid through that day, Norwegian time) or `365d` (days
    from `now`). The expiry must lie in the future."""
    text = value.strip()
    days = _DAYS.match(text)
    if days:
        if int(days.group(1)) < 1:
            raise ValueError(f"--expires {value}: give at least 1d")
        return _within_limit(value, now + timedelta(days=int(days.group(1))), now)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--expires {value}: use a date (2027-12-31) or a number of days (365d)"
        ) from None
    expires = datetime.combine(day + timedelta(days=1), time(), tzinfo=_OSLO)
    if expires <= now:
        raise ValueError(f"--expires {value}: the date has passed")
    return _within_limit(value, expires, now)


def _within_limit(value: str, expires: datetime, now: datetime) -> datetime:
    if expires - now > MAX_TOKEN_LIFETIME:
        raise ValueError(
            f"--expires {value}: at most {MAX_TOKEN_LIFETIME.days} days ahead; create a new "
            "token before this one expires"
        )
    return expires
