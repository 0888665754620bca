"""A scripted POP3 maildrop on loopback for the first tier (no tests here): RFC 1939's
transaction commands (UIDL, LIST, RETR, TOP, DELE, QUIT) over a real socket, with DELE carried
out only at QUIT, as a POP3 server does. The real server, Dovecot, is in the `mail` tier
(test_edi_mailbox.py); this peer lets `poplib` and `Pop3Mailbox` run in `make test` and plays
the faults a real server rarely shows (no UIDL, a failed QUIT)."""

from __future__ import annotations

import contextlib
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Maildrop:
    mails: dict[str, bytes] = field(default_factory=dict)  # UIDL -> mail, oldest first
    uidl: bool = True  # offers UIDL
    quit_ok: bool = True  # QUIT answered +OK and the DELEs carried out
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, uid: str, raw: bytes) -> None:
        with self.lock:
            self.mails[uid] = raw


def _stuffed(lines: list[bytes]) -> bytes:
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)


class _Session(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        drop = self.server.maildrop
        with drop.lock:
            snapshot = list(drop.mails.items())
        deleted: set[int] = set()
        self.wfile.write(b"+OK ready\r\n")
        while line := self.rfile.readline():
            command, *args = line.strip().split(b" ") or [b""]
            number = int(args[0]) if args and args[0].isdigit() else 0
            present = 0 < number <= len(snapshot) and number not in deleted
            found = snapshot[number - 1][1] if present else b""
            numbered = [(n, m) for n, m in enumerate(snapshot, 1) if n not in deleted]
            match command.upper():
                case b"USER" | b"PASS" | b"NOOP":
                    self._ok()
                case b"UIDL" if drop.uidl:
                    self._ok(_stuffed([f"{n} {uid}".encode() for n, (uid, _) in numbered]))
                case b"LIST":
                    self._ok(_stuffed([f"{n} {len(raw)}".encode() for n, (_, raw) in numbered]))
                case b"RETR" if present:
                    self._ok(_stuffed(found.removesuffix(b"\r\n").split(b"\r\n")))
                case b"TOP" if present and len(args) == 2:
                    head, _, body = found.partition(b"\r\n\r\n")
                    lines = body.split(b"\r\n")[: int(args[1])]
                    self._ok(_stuffed([*head.split(b"\r\n"), b"", *lines]))
                case b"DELE" if present:
                    deleted.add(number)
                    self.wfile.write(b"+OK marked\r\n")
                case b"QUIT":
                    self._quit(drop, {snapshot[n - 1][0] for n in deleted})
                    return
                case _:
                    self.wfile.write(b"-ERR not here\r\n")

    def _ok(self, lines: bytes | None = None) -> None:
        self.wfile.write(b"+OK\r\n" + (b"" if lines is None else lines + b".\r\n"))

    def _quit(self, drop: Maildrop, deleted: set[str]) -> None:
        if not drop.quit_ok:
            self.wfile.write(b"-ERR could not update the maildrop\r\n")
            return
        with drop.lock:
            for uid in deleted:
                drop.mails.pop(uid, None)
        self.wfile.write(b"+OK bye\r\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    maildrop: Maildrop


@contextlib.contextmanager
def running_maildrop() -> Iterator[Maildrop]:
    server = _Server(("127.0.0.1", 0), _Session)
    server.maildrop = Maildrop(port=int(server.server_address[1]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.maildrop
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
