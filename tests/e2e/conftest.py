"""A real kpr-mottak server: `kpr-mottak db upgrade`, `kpr-mottak dev-pki`, then uvicorn on a
free port, with its own SQLite database and development PKI in a temporary directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent
STARTUP_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Server:
    base_url: str
    database_url: str
    pki_dir: Path
    log: Path


def chromium() -> str:
    """Debian's headless Chromium: a failure where CI requires the tools, else a skip."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("KPR_REQUIRE_TOOLS") == "1":
        pytest.fail("chromium is required (KPR_REQUIRE_TOOLS=1) but not installed")
    pytest.skip("chromium not installed (Debian package `chromium`)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _environment(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPR_")}
    env.update(
        KPR_ENV="test",
        KPR_DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'kpr.db'}",
        KPR_PKI_DIR=str(tmp / "pki"),
        KPR_RECEIVERS="131725=pilot",
        KPR_LOG_FORMAT="json",
    )
    return env


def _cli(env: dict[str, str], cwd: Path, *args: str) -> None:
    done = subprocess.run(
        [str(BIN / "kpr-mottak"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kpr-mottak {' '.join(args)}: {done.stdout}{done.stderr}"


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"uvicorn exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"uvicorn not ready after {STARTUP_SECONDS} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("e2e")
    env = _environment(tmp)
    _cli(env, tmp, "db", "upgrade")
    _cli(env, tmp, "dev-pki")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / "uvicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            cwd=tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(proc, url, log)
        yield Server(url, env["KPR_DATABASE_URL"], tmp / "pki", log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
