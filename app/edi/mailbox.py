"""What the EDI runner needs of a mailbox, whatever the protocol (IMAP in `app.edi.imap`, POP3
in `app.edi.pop3`): a blocking session, used as a context manager in a worker thread, that
lists the oldest mails with their sizes, reads one whole or, for a mail over the limit, only
its header block and the start of its first part, and removes a mail once its outcome is
committed.

A mail's `key` is stable across sessions (IMAP: the UID; POP3: the UIDL), so a mail read
again after a crash is the same mail.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol


class MailboxError(Exception):
    """The server refused or could not be reached; the poll tries again later."""


@dataclass(frozen=True, slots=True)
class Listed:
    key: str  # IMAP UID or POP3 UIDL
    size: int  # the whole mail, as the server counts it


@dataclass(frozen=True, slots=True, kw_only=True)
class FirstPart:
    """What is read of a mail over the limit (app.edi.oversize)."""

    head: bytes  # the mail's header block
    part_headers: bytes  # the first MIME part's headers (a single-part mail: the mail's)
    part: bytes  # the start of that part's content, at most the `limit` asked for


class Mailbox(Protocol):
    """A logged-in session on one mailbox."""

    def __enter__(self) -> Mailbox: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None: ...

    def listed(self, limit: int) -> list[Listed]:
        """The oldest `limit` mails still in the mailbox, oldest first."""
        ...

    def fetch(self, key: str) -> bytes:
        """The whole mail, as it is (never marked read)."""
        ...

    def first_part(self, listed: Listed, limit: int) -> FirstPart:
        """The header block and the first `limit` bytes of the first MIME part."""
        ...

    def remove(self, key: str) -> None:
        """Called only once the mail's outcome is committed."""
        ...


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Server certificates verified (host name included) against the CA bundle, else the
    system's."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
