"""A Helsenorge-style sender for dev and tests (`kpr-mottak send --amqp`), written apart from
the receiver: its own CMS (cryptography's PKCS#7 signer, `openssl cms -encrypt`) and its own
proton messages. It signs a MsgHead (CMS SignedData, the certificate included), encrypts it to
KPR (EnvelopedData, AES-256-CBC, recipient by issuer and serial), sends it to `{to}_async`
with Helsenorge's properties, and waits for the answer on `{from}_async` or `{from}_error`.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509 import load_pem_x509_certificate
from proton import Message, Timeout
from proton.utils import BlockingConnection

CONTENT_TYPE = "application/pkcs7-mime; smime-type=signed-and-enveloped-data"


def sign(
    content: bytes, key_pem: bytes, cert_pem: bytes, *, with_certificate: bool = True
) -> bytes:
    """CMS SignedData (DER) over `content`; the signer's certificate inside unless told not
    to (a receiver answers that with `transport:missing-certificate`)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    cert = load_pem_x509_certificate(cert_pem)
    options = [pkcs7.PKCS7Options.Binary]
    if not with_certificate:
        options.append(pkcs7.PKCS7Options.NoCerts)
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(cert, key, hashes.SHA256())  # type: ignore[arg-type]
        .sign(serialization.Encoding.DER, options)
    )


def encrypt(content: bytes, recipient_pem: Path) -> bytes:
    """`openssl cms -encrypt`: EnvelopedData (DER) to `recipient_pem`, AES-256-CBC."""
    with tempfile.NamedTemporaryFile() as plain:
        plain.write(content)
        plain.flush()
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [  # noqa: S607 - openssl from PATH, as the interop tests use it
                "openssl",
                "cms",
                "-encrypt",
                "-binary",
                "-aes256",
                "-outform",
                "DER",
                "-in",
                plain.name,
                str(recipient_pem),
            ],
            capture_output=True,
            check=True,
        )
    return done.stdout


@dataclass(frozen=True, slots=True)
class Answer:
    queue: str
    subject: str | None
    properties: dict[str, str]
    body: bytes


def protect(
    msghead: bytes,
    pki_dir: Path,
    *,
    signer: str = "municipality-signing",
    with_certificate: bool = True,
) -> bytes:
    """Sign with `{signer}.key`/`.crt` from `pki_dir`, then encrypt to `kpr-encryption.crt`."""
    signed = sign(
        msghead,
        (pki_dir / f"{signer}.key").read_bytes(),
        (pki_dir / f"{signer}.crt").read_bytes(),
        with_certificate=with_certificate,
    )
    return encrypt(signed, pki_dir / "kpr-encryption.crt")


def message(body: bytes, *, from_her: str, to_her: str, subject: str) -> Message:
    sent = Message(
        body=body,
        id=str(uuid.uuid4()),
        subject=subject,
        content_type=CONTENT_TYPE,
        properties={
            "fromHerId": from_her,
            "toHerId": to_her,
            "applicationTimeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "enqueuedTimeUtc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    sent.address = f"{to_her}_async"
    sent.durable = True
    sent.inferred = True
    return sent


def send_and_wait(
    url: str, sent: Message, *, from_her: str, to_her: str, wait: float
) -> Answer | None:
    """Send to `{to}_async`; the first answer on `{from}_async` or `{from}_error`, or None."""
    connection = BlockingConnection(url, timeout=30, allowed_mechs="PLAIN ANONYMOUS")
    try:
        connection.create_sender(f"/amq/queue/{to_her}_async").send(sent)
        receivers = {
            q: connection.create_receiver(f"/amq/queue/{q}", credit=1)
            for q in (f"{from_her}_async", f"{from_her}_error")
        }
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for queue, receiver in receivers.items():
                try:
                    got = receiver.receive(timeout=0.5)
                except Timeout:
                    continue
                receiver.accept()
                raw: dict[Any, Any] = got.properties or {}
                body = bytes(got.body) if isinstance(got.body, bytes | memoryview) else b""
                props = {str(k): str(v) for k, v in raw.items()}
                return Answer(queue, got.subject, props, body)
        return None
    finally:
        connection.close()
