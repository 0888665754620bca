"""One mailbox over IMAP (standard library `imaplib`, blocking: run it in a worker thread); an
`app.edi.mailbox.Mailbox`.

A mail is identified by its UID within the folder's UIDVALIDITY. It is read with
`BODY.PEEK[]` (never marked seen by reading) and removed with `\\Deleted` and an expunge only
after its outcome is committed (`remove`): a crash before that leaves it in the folder, and
the next poll reads it again.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
from pathlib import Path
from typing import Any

from app.edi.mailbox import FirstPart, Listed, MailboxError, tls_context
from app.platform.mailboxes import EdiMailbox

TIMEOUT_SECONDS = 60.0
_FETCH_HEAD = re.compile(rb"UID (\d+)|RFC822\.SIZE (\d+)")


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
        found: list[tuple[int, int]] = []
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            if not isinstance(line, bytes):
                continue
            uid = size = None
            for match in _FETCH_HEAD.finditer(line):
                uid = int(match.group(1)) if match.group(1) else uid
                size = int(match.group(2)) if match.group(2) else size
            if uid is not None and size is not None:
                found.append((uid, size))
        return [Listed(str(uid), size) for uid, size in sorted(found)]

    def fetch(self, key: str) -> bytes:
        """The whole mail, not marked seen."""
        return self._section(int(key))

    def first_part(self, listed: Listed, limit: int) -> FirstPart:
        uid = int(listed.key)
        return FirstPart(
            head=self._section(uid, "HEADER"),
            part_headers=self._section(uid, "1.MIME"),
            part=self._section(uid, "1", limit=limit),
        )

    def _section(self, uid: int, section: str = "", limit: int | None = None) -> bytes:
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

    def remove(self, key: str) -> None:
        """Mark the mail deleted and expunge it (only that mail where the server has UIDPLUS)."""
        uid = int(key)
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
