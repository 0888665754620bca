"""One mailbox over IMAP (standard library `imaplib`, blocking: run it in a worker thread).

A mail is identified by its UID within the folder's UIDVALIDITY. It is read with
`BODY.PEEK[]` (never marked seen by reading) and removed with `\\Deleted` and an expunge only
after its outcome is committed (`remove`): a crash before that leaves it in the folder, and
the next poll reads it again.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.platform.mailboxes import EdiMailbox

TIMEOUT_SECONDS = 60.0
_FETCH_HEAD = re.compile(rb"UID (\d+)|RFC822\.SIZE (\d+)")


class MailboxError(Exception):
    """The server refused or could not be reached; the poll tries again later."""


@dataclass(frozen=True, slots=True)
class Listed:
    uid: int
    size: int


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Server certificates verified (host name included) against the CA bundle, else the
    system's."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)


class ImapMailbox:
    """A logged-in session on one mailbox's folder; use as a context manager."""

    def __init__(self, box: EdiMailbox, password: str, ca_file: Path | None = None) -> None:
        self.box = box
        self._password = password
        self._ca_file = ca_file
        self._imap: imaplib.IMAP4 | None = None

    def __enter__(self) -> ImapMailbox:
        box = self.box
        try:
            if box.tls:
                self._imap = imaplib.IMAP4_SSL(
                    box.host,
                    box.port,
                    ssl_context=tls_context(self._ca_file),
                    timeout=TIMEOUT_SECONDS,
                )
            else:
                self._imap = imaplib.IMAP4(box.host, box.port, timeout=TIMEOUT_SECONDS)
            self._imap.login(box.username, self._password)
            self._ok(self._imap.select(_quoted(box.folder)), "SELECT")
        except (OSError, imaplib.IMAP4.error) as exc:
            self.__exit__(None, None, None)
            raise MailboxError(f"{type(exc).__name__}: {exc}") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        imap, self._imap = self._imap, None
        if imap is not None:
            with contextlib.suppress(Exception):
                imap.logout()

    @property
    def imap(self) -> imaplib.IMAP4:
        if self._imap is None:
            raise MailboxError("not connected")
        return self._imap

    def _ok(self, answer: tuple[str, list[Any]], what: str) -> list[Any]:
        status, data = answer
        if status != "OK":
            raise MailboxError(f"{what}: {status}")
        return data

    def listed(self, limit: int) -> list[Listed]:
        """The oldest `limit` mails not yet marked deleted, with their sizes."""
        try:
            data = self._ok(self.imap.uid("SEARCH", "UNDELETED"), "SEARCH")
            uids = [int(u) for u in (data[0] or b"").split()][:limit]
            if not uids:
                return []
            data = self._ok(
                self.imap.uid("FETCH", ",".join(map(str, uids)), "(UID RFC822.SIZE)"), "FETCH"
            )
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"{type(exc).__name__}: {exc}") from exc
        found: list[Listed] = []
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            if not isinstance(line, bytes):
                continue
            uid = size = None
            for match in _FETCH_HEAD.finditer(line):
                uid = int(match.group(1)) if match.group(1) else uid
                size = int(match.group(2)) if match.group(2) else size
            if uid is not None and size is not None:
                found.append(Listed(uid, size))
        return sorted(found, key=lambda m: m.uid)

    def fetch(self, uid: int, section: str = "", limit: int | None = None) -> bytes:
        """The whole mail (or one MIME section, e.g. `1`, or its first `limit` bytes), not
        marked seen."""
        part = f"BODY.PEEK[{section}]" + (f"<0.{limit}>" if limit is not None else "")
        try:
            data = self._ok(self.imap.uid("FETCH", str(uid), f"({part})"), "FETCH")
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"{type(exc).__name__}: {exc}") from exc
        for item in data:
            if isinstance(item, tuple) and isinstance(item[1], bytes):
                return item[1]
        raise MailboxError(f"FETCH {uid}: no such mail")

    def remove(self, uid: int) -> None:
        """Mark the mail deleted and expunge it (only that mail where the server has UIDPLUS)."""
        try:
            self._ok(self.imap.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
            if "UIDPLUS" in self.imap.capabilities:
                self._ok(self.imap.uid("EXPUNGE", str(uid)), "UID EXPUNGE")
            else:
                self._ok(self.imap.expunge(), "EXPUNGE")
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"{type(exc).__name__}: {exc}") from exc


def _quoted(folder: str) -> str:
    escaped = folder.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
