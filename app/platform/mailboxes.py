"""The EDI channel's addresses (issue 25): `KPR_EDI_MAILBOXES` and `KPR_EDI_SMTP_URL` read
into small values at start-up, with an error naming the key and the entry.

A mailbox entry is `ADDRESS=imaps://USER@HOST:PORT/FOLDER` or `ADDRESS=pop3s://USER@HOST:PORT`
(POP3 has one maildrop, no folders); plain `imap://` and `pop3://` are for a server on loopback
only (tests, a local Dovecot). The address's environment comes from NHN's domains
(`@edi.nhn.no` production, `@testedi.nhn.no` test) or from `?environment=` on the URL; the
intake cross-checks it against the signed To HER-id's environment in `KPR_RECEIVERS`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

_ENVIRONMENTS = ("pilot", "test", "production")
# NHN's EDI domains and what they are (issue 25)
_NHN_DOMAINS = {"edi.nhn.no": "production", "testedi.nhn.no": "test"}
_MAILBOX_PORTS = {"imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995}
_SMTP_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True, slots=True, kw_only=True)
class EdiMailbox:
    address: str  # lower-case, as KPR's EDI address (the From of our replies)
    host: str
    port: int
    username: str
    folder: str
    tls: bool  # imaps/pop3s: TLS from the first byte, verified against KPR_EDI_CA_FILE
    environment: str
    protocol: str = "imap"  # imap or pop3 (a mailbox read by polling); lmtp/smtp: KPR_EDI_LISTEN

    @property
    def label(self) -> str:
        """For logs: the address, never the account's password."""
        return self.address


@dataclass(frozen=True, slots=True, kw_only=True)
class EdiRelay:
    host: str
    port: int
    tls: bool  # smtps: TLS from the first byte
    starttls: bool


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _environment(address: str, query: str, where: str) -> str:
    asked = parse_qs(query).get("environment", [])
    if asked:
        if asked[-1] not in _ENVIRONMENTS:
            raise ValueError(f"{where}: environment must be one of {', '.join(_ENVIRONMENTS)}")
        return asked[-1]
    domain = address.rpartition("@")[2]
    if domain in _NHN_DOMAINS:
        return _NHN_DOMAINS[domain]
    raise ValueError(
        f"{where}: say which environment the address serves (?environment=pilot|test|"
        "production on the URL); only NHN's edi.nhn.no and testedi.nhn.no are known"
    )


def parse_mailbox(entry: str) -> EdiMailbox:
    where = f"KPR_EDI_MAILBOXES '{entry}'"
    address, sep, url = entry.partition("=")
    address = address.strip().lower()
    if not sep or "@" not in address or any(c.isspace() for c in address):
        raise ValueError(f"{where}: not ADDRESS=imaps://USER@HOST:PORT/FOLDER (or pop3s://)")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _MAILBOX_PORTS or not parts.hostname or not parts.username:
        raise ValueError(
            f"{where}: the URL must be imaps://USER@HOST[:PORT]/FOLDER or pop3s://USER@HOST[:PORT]"
        )
    if parts.password:
        raise ValueError(f"{where}: no password in the URL; put it in KPR_EDI_CREDENTIALS_FILE")
    if not scheme.endswith("s") and not _loopback(parts.hostname):
        raise ValueError(
            f"{where}: plain {scheme}:// only to a server on loopback; use {scheme}s://"
        )
    protocol = scheme.rstrip("s")
    folder = unquote(parts.path.lstrip("/"))
    if protocol == "pop3" and folder:
        raise ValueError(f"{where}: POP3 has no folders; leave the path out")
    try:
        port = parts.port or _MAILBOX_PORTS[scheme]
    except ValueError:
        raise ValueError(f"{where}: the port is not a number from 1 to 65535") from None
    return EdiMailbox(
        address=address,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username),
        folder=folder or "INBOX",
        tls=scheme.endswith("s"),
        environment=_environment(address, parts.query, where),
        protocol=protocol,
    )


def parse_mailboxes(raw: str) -> tuple[EdiMailbox, ...]:
    boxes = tuple(parse_mailbox(e) for e in (p.strip() for p in raw.split(",")) if e)
    seen: set[str] = set()
    for box in boxes:
        if box.address in seen:
            raise ValueError(f"KPR_EDI_MAILBOXES: {box.address} is named twice")
        seen.add(box.address)
    return boxes


def parse_relay(url: str) -> EdiRelay:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _SMTP_PORTS or not parts.hostname:
        raise ValueError(
            f"KPR_EDI_SMTP_URL '{url}': not smtps://HOST[:PORT], smtp+starttls://HOST[:PORT] or "
            "(loopback only) smtp://HOST[:PORT]"
        )
    if parts.username or parts.password:
        raise ValueError("KPR_EDI_SMTP_URL: credentials go in KPR_EDI_SMTP_CREDENTIALS_FILE")
    if scheme == "smtp" and not _loopback(parts.hostname):
        raise ValueError(
            "KPR_EDI_SMTP_URL: plain smtp:// only to loopback; use smtps:// or STARTTLS"
        )
    try:
        port = parts.port or _SMTP_PORTS[scheme]
    except ValueError:
        raise ValueError("KPR_EDI_SMTP_URL: the port is not a number from 1 to 65535") from None
    return EdiRelay(
        host=parts.hostname, port=port, tls=scheme == "smtps", starttls=scheme == "smtp+starttls"
    )


def read_credentials(text: str, key: str) -> dict[str, str]:
    """`NAME:PASSWORD` lines (NAME an address or a user name); blank lines and `#` comments
    are skipped. The password is everything after the first colon."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not name.strip() or not password:
            raise ValueError(f"{key}: line {number} is not NAME:PASSWORD")
        found[name.strip()] = password
    return found


_LISTEN_SCHEMES = ("lmtp", "smtp")


def parse_listen(raw: str) -> tuple[EdiMailbox, ...]:
    """`KPR_EDI_LISTEN`: `ADDRESS=lmtp://HOST:PORT[?environment=...]` (or `smtp://`), comma-
    separated: the addresses whose mail the site's MTA hands over directly. Entries on the same
    HOST:PORT share one listener. Plain, without TLS: bind it to loopback or an internal
    network the MTA alone reaches."""
    found: list[EdiMailbox] = []
    for entry in (p.strip() for p in raw.split(",")):
        if not entry:
            continue
        where = f"KPR_EDI_LISTEN '{entry}'"
        address, sep, url = entry.partition("=")
        address = address.strip().lower()
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if not sep or "@" not in address or scheme not in _LISTEN_SCHEMES or not parts.hostname:
            raise ValueError(f"{where}: not ADDRESS=lmtp://HOST:PORT (or smtp://HOST:PORT)")
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None:
            raise ValueError(f"{where}: name the port to listen on, a number from 1 to 65535")
        if any(b.address == address for b in found):
            raise ValueError(f"KPR_EDI_LISTEN: {address} is named twice")
        found.append(
            EdiMailbox(
                address=address,
                host=parts.hostname,
                port=port,
                username="",
                folder=scheme,  # the protocol the MTA speaks to us: lmtp or smtp
                tls=False,
                environment=_environment(address, parts.query, where),
                protocol=scheme,
            )
        )
    return tuple(found)
