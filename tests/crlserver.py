"""A real HTTP server for CRLs: serves the files of a directory on a loopback port, in a
thread of the test process. Replace a file to publish a new CRL."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@dataclass
class CrlServer:
    root: Path
    base_url: str
    server: ThreadingHTTPServer

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def publish(self, name: str, crl: x509.CertificateRevocationList) -> None:
        tmp = self.root / f".{name}.tmp"
        tmp.write_bytes(crl.public_bytes(Encoding.DER))
        tmp.replace(self.root / name)

    def withdraw(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)


@contextmanager
def crl_server(root: Path) -> Iterator[CrlServer]:
    root.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_Quiet, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield CrlServer(root, f"http://127.0.0.1:{server.server_address[1]}", server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
