"""Key and certificate rollover against a running `kpr-mottak serve`: `kpr-mottak keys
reload` (SIGHUP) makes the new decryption and signing keys live without a restart, a message
in flight finishes with the keys it started with, and keys that do not load are refused."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families

from app.dev.client import SendOptions, build_epj_message
from app.dev.devpki import DEV_KPR_ORGNR, issue_certificate
from app.security.keys import KeyPair, load_key_pair
from tests.e2e.processes import Municipality, prepare, start
from tests.integration.messages import DEMO_HER, assert_signed_ok_reply, msghead

pytestmark = pytest.mark.e2e
DEADLINE_SECONDS = 60.0


def _write_pair(pair: KeyPair, key: Path, cert: Path) -> None:
    key.write_bytes(
        pair.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert.write_bytes(pair.certificate.public_bytes(serialization.Encoding.PEM))


def _new_kpr_pair(pki: Path, purpose: str) -> KeyPair:
    ca = load_key_pair((pki / "ca.key").read_bytes(), (pki / "ca.crt").read_bytes())
    now = dt.datetime.now(dt.UTC)
    return issue_certificate(
        ca,
        common_name="KPR Dev (ny)",
        orgnr=DEV_KPR_ORGNR,
        purpose="encryption" if purpose == "encryption" else "signing",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=365),
        key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def _signer_der(reply_body: bytes) -> bytes:
    """The certificate in the reply envelope's ds:KeyInfo."""
    found = re.search(rb"<ds:X509Certificate>([^<]+)</ds:X509Certificate>", reply_body)
    assert found is not None
    return base64.b64decode(re.sub(rb"\s", b"", found.group(1)))


def _keys(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "kpr-mottak"), "keys", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _metric(client: httpx.AsyncClient, name: str, labels: dict[str, str]) -> float:
    text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


async def _until_metric(
    client: httpx.AsyncClient, name: str, count: float, labels: dict[str, str] | None = None
) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if await _metric(client, name, labels or {}) >= count:
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"{name}{labels or ''} never reached {count}")


async def _until_reloads(client: httpx.AsyncClient, outcome: str, count: float) -> None:
    await _until_metric(client, "kpr_key_reloads_total", count, {"outcome": outcome})


async def test_keys_roll_over_without_restart_and_in_flight_messages_keep_theirs(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    env = prepare(tmp_path, KPR_DECRYPTION_KEYS_DIR=str(keys), KPR_PID_FILE=str(tmp_path / "pid"))
    pki = tmp_path / "pki"
    keys.mkdir()
    shutil.copy(pki / "kpr-encryption.key", keys / "old.key")
    shutil.copy(pki / "kpr-encryption.crt", keys / "old.crt")
    server = start(env, tmp_path)
    muni = Municipality.from_pki(pki)
    old_signer = x509.load_pem_x509_certificate((pki / "kpr-signing.crt").read_bytes())
    new_encryption = _new_kpr_pair(pki, "encryption")
    new_signing = _new_kpr_pair(pki, "signing")
    to_new = build_epj_message(
        msghead(),
        SendOptions(from_her=DEMO_HER),
        signing=muni.signing,
        encrypt_to=new_encryption.certificate,
    )
    in_flight = muni.message()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=120.0) as client:
            r = await client.post("/ebms", content=to_new.body, headers=to_new.http_headers)
            before = muni.read(r.content, r.headers["content-type"])
            assert before.header is not None
            assert before.header.action == "MessageError"  # not our key (yet)

            # A message whose upload started before the rollover ...
            half = len(in_flight.body) // 2
            go_on = asyncio.Event()

            async def slow_body() -> AsyncIterator[bytes]:
                yield in_flight.body[:half]
                await go_on.wait()
                yield in_flight.body[half:]

            upload = asyncio.create_task(
                client.post("/ebms", content=slow_body(), headers=in_flight.http_headers)
            )
            # The request is in the server: its handler took the keyring before reading the
            # body, with no wait in between; the reload below takes a process start longer.
            await _until_metric(client, "kpr_ebms_in_progress", 1)
            # ... then the rollover: new pair in, old pair out, new signing key in place.
            _write_pair(new_encryption, keys / "new.key", keys / "new.crt")
            (keys / "old.key").unlink()
            (keys / "old.crt").unlink()
            _write_pair(new_signing, pki / "kpr-signing.key", pki / "kpr-signing.crt")
            done = _keys(env, tmp_path, "reload")
            assert done.returncode == 0, done.stdout + done.stderr
            await _until_reloads(client, "ok", 1)
            go_on.set()
            r = await upload
            assert_signed_ok_reply(
                muni.read(r.content, r.headers["content-type"]), in_flight.message_id
            )
            assert _signer_der(r.content) == old_signer.public_bytes(serialization.Encoding.DER)

            # After the reload: the new keys answer, the old decryption key is gone.
            r = await client.post("/ebms", content=to_new.body, headers=to_new.http_headers)
            assert_signed_ok_reply(
                muni.read(r.content, r.headers["content-type"]), to_new.message_id
            )
            assert _signer_der(r.content) == new_signing.certificate.public_bytes(
                serialization.Encoding.DER
            )
            to_old = muni.message()
            r = await client.post("/ebms", content=to_old.body, headers=to_old.http_headers)
            after = muni.read(r.content, r.headers["content-type"])
            assert after.header is not None
            assert after.header.action == "MessageError"

            # Keys that do not load: the CLI refuses before signalling, and a SIGHUP anyway
            # leaves the server on the keys it has.
            (keys / "broken.key").write_text("not a key")
            (keys / "broken.crt").write_text("not a certificate")
            refused = _keys(env, tmp_path, "reload")
            assert refused.returncode == 1
            server.proc.send_signal(signal.SIGHUP)
            await _until_reloads(client, "failed", 1)
            encrypted_new = build_epj_message(
                msghead(),
                SendOptions(from_her=DEMO_HER),
                signing=muni.signing,
                encrypt_to=new_encryption.certificate,
            )
            r = await client.post(
                "/ebms", content=encrypted_new.body, headers=encrypted_new.http_headers
            )
            assert_signed_ok_reply(
                muni.read(r.content, r.headers["content-type"]), encrypted_new.message_id
            )
    finally:
        server.stop()
    assert server.stopped_cleanly()
