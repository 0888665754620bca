"""Real processes for operations tests: a uvicorn server started as operators start it (with
the graceful-shutdown grace period of `kpr-mottak serve`), and a throw-away PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from app.dev.client import ReadReply, SendOptions, build_epj_message, read_reply
from app.ebxml.build import BuiltMessage
from app.security.keys import KeyPair, load_certificate, load_key_pair
from bench.pgcluster import PgCluster, pg_binaries
from tests.e2e.conftest import _cli, _environment, _free_port, _wait_ready
from tests.integration.messages import DEMO_HER, msghead


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    env: dict[str, str]
    cwd: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def stopped_cleanly(self) -> bool:
        """Exited after SIGTERM with its lifespan run to the end (uvicorn re-raises the signal
        once shut down, so the exit status is -SIGTERM, not 0)."""
        return self.proc.returncode in (0, -signal.SIGTERM) and "service.stopped" in self.logs()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def prepare(tmp: Path, **overrides: str) -> dict[str, str]:
    """Environment for a server in `tmp`: migrated database, dev PKI, demo party."""
    env = _environment(tmp)
    env.update(overrides)
    _cli(env, tmp, "db", "upgrade")
    _cli(env, tmp, "dev-pki")
    return env


def start(env: dict[str, str], cwd: Path) -> Running:
    """`kpr-mottak serve --workers 1` on a free port (grace period:
    KPR_SHUTDOWN_GRACE_SECONDS)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = cwd / f"uvicorn-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            # One worker: these tests watch the process's own /metrics (with --workers N each
            # worker has its own registry, and the socket picks the worker).
            [
                str(Path(sys.executable).parent / "kpr-mottak"),
                *("serve", "--port", str(port), "--workers", "1"),
            ],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Running(proc, url, log, env, cwd)
    try:
        _wait_ready(proc, url, log)
    except BaseException:
        running.stop()
        raise
    return running


@dataclass(frozen=True)
class Municipality:
    """The demo municipality's keys from a dev PKI directory, and KPR's encryption cert."""

    signing: KeyPair
    encryption: KeyPair
    kpr_encryption: x509.Certificate

    @classmethod
    def from_pki(cls, directory: Path) -> Municipality:
        def pair(name: str) -> KeyPair:
            return load_key_pair(
                (directory / f"{name}.key").read_bytes(), (directory / f"{name}.crt").read_bytes()
            )

        kpr = load_certificate((directory / "kpr-encryption.crt").read_bytes())
        return cls(pair("municipality-signing"), pair("municipality-encryption"), kpr)

    def message(self, notifications: int = 3) -> BuiltMessage:
        return build_epj_message(
            msghead(notifications),
            SendOptions(from_her=DEMO_HER),
            signing=self.signing,
            encrypt_to=self.kpr_encryption,
        )

    def read(self, body: bytes, content_type: str) -> ReadReply:
        return read_reply(body, content_type, decryption=(self.encryption,))


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    bindir = pg_binaries()
    if bindir is None:
        if os.environ.get("KPR_REQUIRE_TOOLS") == "1":
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are required")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    cluster = PgCluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
