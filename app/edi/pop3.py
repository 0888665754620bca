"""One mailbox over POP3 (standard library `poplib`, blocking: run it in a worker thread); an
`app.edi.mailbox.Mailbox`.

A mail is identified by its UIDL, which the server keeps across sessions (RFC 1939); LIST gives
the sizes, RETR a whole mail, TOP the header block and the first lines of the body of a mail
over the limit (both UIDL and TOP are required of the server).

Removal: DELE only marks a mail; the server removes it when the session ends with QUIT. A
mail gets its DELE only once its outcome is committed, and the QUIT ends the session after the
batch (the runner's `BATCH` mails at most). A crash or a broken connection before QUIT and the
server forgets those DELEs: the mails are read again on the next poll and answered the same
(the intake's dedup gives the stored reply, the outbox key keeps it from being mailed twice).

poplib reads lines of at most 2 KiB. A mail's own lines may be longer (SMTP's limit is 1 000
bytes, but not every sender keeps it), so RETR reads lines as long as the mail; TOP keeps the
2 KiB lines, which bounds what is read of a mail over the limit. An answer that breaks the
protocol ends the session: QUIT is sent all the same and the rest of the answer read and
dropped, so the removals before it still take effect. A mail over the limit whose first lines
TOP cannot read is refused with nothing read (a new session goes on with the batch).
"""

from __future__ import annotations

import poplib
from collections.abc import Callable
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import BinaryIO, TypeVar

from app.edi.mailbox import FirstPart, Listed, MailboxError, tls_context
from app.platform.mailboxes import EdiMailbox

TIMEOUT_SECONDS = 60.0
CRLF = b"\r\n"
LINE_BYTES = 2048  # poplib's own limit
T = TypeVar("T")


class _Lines:
    """poplib's line reader with a limit the session sets (poplib's is fixed at 2 KiB)."""

    file: BinaryIO
    line_limit = LINE_BYTES

    def _getline(self) -> tuple[bytes, int]:
        line = self.file.readline(self.line_limit + 1)
        if len(line) > self.line_limit:
            raise poplib.error_proto("line too long")
        if not line:
            raise poplib.error_proto("-ERR EOF")
        if line.endswith(CRLF):
            return line[:-2], len(line)
        return line.rstrip(b"\n"), len(line)


class _Pop3(_Lines, poplib.POP3):
    pass


class _Pop3Ssl(_Lines, poplib.POP3_SSL):
    pass


class Pop3Mailbox:
    """A logged-in POP3 session on one maildrop; use as a context manager."""

    def __init__(self, box: EdiMailbox, password: str, ca_file: Path | None = None) -> None:
        self.box = box
        self._password = password
        self._ca_file = ca_file
        self._pop: _Pop3 | _Pop3Ssl | None = None
        self._numbers: dict[str, int] = {}  # UIDL -> message number in this session
        self._sizes: dict[str, int] = {}
        self._broken = False  # an answer out of step: the session cannot go on

    def __enter__(self) -> Pop3Mailbox:
        box = self.box
        self._broken = False
        try:
            if box.tls:
                context = tls_context(self._ca_file)
                self._pop = _Pop3Ssl(box.host, box.port, timeout=TIMEOUT_SECONDS, context=context)
            else:
                self._pop = _Pop3(box.host, box.port, timeout=TIMEOUT_SECONDS)
            self._pop.user(box.username)
            self._pop.pass_(self._password)
        except (OSError, poplib.error_proto) as exc:
            pop, self._pop = self._pop, None
            if pop is not None:
                pop.close()
            raise MailboxError(_said(exc)) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        """QUIT: the server removes the mails marked with DELE in this session."""
        pop, self._pop = self._pop, None
        if pop is None:
            return
        if self._broken:
            _quit_out_of_step(pop)
            return
        try:
            pop.quit()
        except (OSError, poplib.error_proto) as error:
            pop.close()
            raise MailboxError(f"QUIT: {_said(error)}; the removals may be undone") from error

    def _call(self, what: str, call: Callable[[poplib.POP3], T]) -> T:
        if self._pop is None or self._broken:
            raise MailboxError("not connected")
        try:
            return call(self._pop)
        except poplib.error_proto as exc:
            text = str(exc)
            self._broken = text == "-ERR EOF" or not text.startswith(("-ERR", "b'-ERR"))
            raise MailboxError(f"{what}: {_said(exc)}") from exc
        except OSError as exc:
            self._broken = True
            raise MailboxError(f"{what}: {_said(exc)}") from exc

    def listed(self, limit: int) -> list[Listed]:
        """The oldest `limit` mails not marked with DELE, with their sizes."""
        _, uidl, _ = self._call("UIDL", lambda pop: pop.uidl())
        _, sizes, _ = self._call("LIST", lambda pop: pop.list())
        keys = {number: value.decode("ascii", "replace") for number, value in numbered(uidl)}
        octets = {number: int(value) for number, value in numbered(sizes) if value.isdigit()}
        self._numbers = {key: number for number, key in keys.items()}
        self._sizes = {keys[number]: size for number, size in octets.items() if number in keys}
        return [
            Listed(keys[number], octets[number])
            for number in sorted(keys)[:limit]
            if number in octets
        ]

    def _number(self, key: str) -> int:
        number = self._numbers.get(key)
        if number is None:
            raise MailboxError(f"no mail {key} in this session")
        return number

    def fetch(self, key: str) -> bytes:
        """RETR: the whole mail (POP3 marks nothing read)."""
        number = self._number(key)
        if self._pop is not None:  # a line may be as long as the mail
            self._pop.line_limit = max(LINE_BYTES, self._sizes.get(key, 0) + 2)
        try:
            _, lines, _ = self._call("RETR", lambda pop: pop.retr(number))
        finally:
            if self._pop is not None:
                self._pop.line_limit = LINE_BYTES
        return CRLF.join(lines) + CRLF

    def first_part(self, listed: Listed, limit: int) -> FirstPart:
        """TOP: the header block and enough lines of the body for `limit` bytes of the first
        part (lines of at least 32 bytes, as base64 has; poplib refuses a line over 2 KiB, so
        at most a few MiB are read of a mail of any size)."""
        number = self._number(listed.key)
        try:
            _, lines, _ = self._call("TOP", lambda pop: pop.top(number, limit // 32 + 256))
        except MailboxError:
            if not self._broken:
                raise
            self._start_again()
            return FirstPart(head=b"", part_headers=b"", part=b"")
        return split_first_part(lines, limit)

    def _start_again(self) -> None:
        """A new session after an answer out of step (the old one's removals kept)."""
        pop, self._pop = self._pop, None
        if pop is not None:
            _quit_out_of_step(pop)
        self.__enter__()
        self.listed(0)

    def remove(self, key: str) -> None:
        """DELE: removed at this session's QUIT (call only once the outcome is committed)."""
        number = self._number(key)
        self._call("DELE", lambda pop: pop.dele(number))
        del self._numbers[key]


def _said(error: Exception) -> str:
    """For logs: the error's kind and the server's -ERR answer, never a line of a mail."""
    text = str(error)
    if isinstance(error, poplib.error_proto) and not text.startswith(("-ERR", "b'-ERR")):
        text = "line too long" if text == "line too long" else "an answer out of step"
    return f"{type(error).__name__}: {text[:200]}"


def _quit_out_of_step(pop: poplib.POP3) -> None:
    """QUIT after an answer we could not follow: the server reads it once it has sent the
    rest of that answer, which is read and dropped until the server closes."""
    try:
        pop.sock.sendall(b"QUIT" + CRLF)
        while pop.file.read(64 * 1024):
            pass
    except OSError:
        pass
    finally:
        pop.close()


def numbered(lines: list[bytes]) -> list[tuple[int, bytes]]:
    """`N VALUE` lines of a UIDL or LIST answer."""
    found: list[tuple[int, bytes]] = []
    for line in lines:
        number, _, value = line.strip().partition(b" ")
        if not number.isdigit() or not value.strip():
            raise MailboxError("the server's UIDL or LIST answer cannot be read")
        found.append((int(number), value.strip()))
    return found


def split_first_part(lines: list[bytes], limit: int) -> FirstPart:
    """A mail's first lines (as TOP gives them, without line ends) as the header block, the
    first MIME part's headers and the first `limit` bytes of its content. A single-part mail:
    its own headers and its body."""
    head, body = _until_blank(lines)
    boundary = _boundary(head)
    if boundary is None:
        return FirstPart(head=head, part_headers=head, part=CRLF.join(body)[:limit])
    delimiter = b"--" + boundary
    start = next((i for i, line in enumerate(body) if line.rstrip() == delimiter), None)
    if start is None:
        return FirstPart(head=head, part_headers=b"", part=b"")
    part_headers, content = _until_blank(body[start + 1 :])
    end = next((i for i, line in enumerate(content) if line.startswith(delimiter)), None)
    return FirstPart(head=head, part_headers=part_headers, part=CRLF.join(content[:end])[:limit])


def _until_blank(lines: list[bytes]) -> tuple[bytes, list[bytes]]:
    """The lines up to the first blank one (with a line end each), and those after it."""
    blank = next((i for i, line in enumerate(lines) if not line), len(lines))
    return b"".join(line + CRLF for line in lines[:blank]), lines[blank + 1 :]


def _boundary(head: bytes) -> bytes | None:
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(head)
        if headers.get_content_maintype() != "multipart":
            return None
        boundary = headers.get_boundary()
    except Exception:  # hostile header bytes: read as single-part
        return None
    return boundary.encode("latin-1", "replace") if boundary else None
