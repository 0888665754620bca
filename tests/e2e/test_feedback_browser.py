"""The open feedback in a real browser: headless Chromium loads /feedback and
/feedback/{kommunenr} from a real `kpr-mottak serve` whose own background task refreshed the
aggregates, with data from the real intake (a signed, encrypted pilot message) and direct
inserts for a production year. The rendered DOM is checked and screenshots are kept under
var/test-artifacts/ (a desktop and a phone width)."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.platform.db import create_engine, session_factory
from tests.e2e.conftest import chromium
from tests.e2e.processes import Municipality, Running, prepare, start
from tests.integration.seed import T0, User, add_register_message

# the second tier (`make test-all`): Chromium
pytestmark = [pytest.mark.e2e, pytest.mark.tools, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"


def _browser(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                # any name but the local server fails to resolve: nothing may come from outside
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--virtual-time-budget=5000",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


async def _seed_production(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        await add_register_message(
            sessions,
            kommune="0301",
            users=[User(("21",)) for _ in range(12)] + [User(("15", "1")) for _ in range(30)],
            dropped=6,
            warned=9,
        )
        await add_register_message(
            sessions,
            kommune="0301",
            received_at=T0 + timedelta(days=30),
            users=[User(("18",)) for _ in range(8)],
        )
        for i, kommune in enumerate(("1201", "1103", "5001", "1902", "0219")):
            await add_register_message(
                sessions,
                kommune=kommune,
                received_at=T0 + timedelta(days=i * 25),
                users=[User(("15",)) for _ in range(6 + i)] + [User(("21",)) for _ in range(5)],
            )
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    chromium()
    tmp = tmp_path_factory.mktemp("feedback")
    env = prepare(tmp, KPR_FEEDBACK_REFRESH_SECONDS="1")
    asyncio.run(_seed_production(env["KPR_DATABASE_URL"]))
    server = start(env, tmp)
    try:
        built = Municipality.from_pki(tmp / "pki").message(notifications=6)
        r = httpx.post(f"{server.url}/ebms", content=built.body, headers=built.http_headers)
        assert r.status_code == 200, r.text[:500]
        _until_refreshed(server.url)
        yield server
    finally:
        server.stop()


def _until_refreshed(url: str) -> None:
    """The server's own refresher (every second here) has taken in the pilot message."""
    year = datetime.now(UTC).year
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = httpx.get(
            f"{url}/api/v1/feedback/0301", params={"year": year, "environment": "pilot"}
        ).json()
        if body.get("readable"):
            return
        time.sleep(0.5)
    pytest.fail("the background refresh did not take the intake's message in")


def test_the_overview_renders_in_a_browser(served: Running) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = f"{served.url}/feedback?year=2018&environment=production"
    done = _browser(url, "--dump-dom")
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert '<html lang="nb">' in dom
    assert "<script" not in dom  # nothing to run: the page works with JavaScript off
    assert "6 av 422" in dom  # headline: municipalities delivered
    assert 'id="on-time"' in dom
    assert 'id="k0301"' in dom
    row = dom[dom.index('id="k0301"') : dom.index("</tr>", dom.index('id="k0301"'))]
    assert "Oslo" in row
    assert "50" in row  # notifications accepted
    assert "IPL-FID-INVALID" in row
    shot = _browser(
        url, f"--screenshot={ARTIFACTS / 'feedback-overview.png'}", "--window-size=1280,1800"
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert (ARTIFACTS / "feedback-overview.png").stat().st_size > 10_000


def test_one_municipality_renders_with_charts_in_a_browser(served: Running) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = f"{served.url}/feedback/0301?year=2018&environment=production"
    done = _browser(url, "--dump-dom")
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Oslo (0301) – 2018" in dom
    assert dom.count("<svg") == 5
    assert "Langtidsopphold i institusjon" in dom
    assert "nasjonal median" in dom
    assert 'id="accepted">50<' in dom
    for name, size in (
        ("feedback-kommune.png", "1280,2400"),
        ("feedback-kommune-phone.png", "390,2400"),
    ):
        shot = _browser(url, f"--screenshot={ARTIFACTS / name}", f"--window-size={size}")
        assert shot.returncode == 0, shot.stderr[-2000:]
        assert (ARTIFACTS / name).stat().st_size > 10_000


def test_the_pilot_message_from_the_intake_is_in_the_pilot_view(served: Running) -> None:
    year = datetime.now(UTC).year
    done = _browser(f"{served.url}/feedback/0301?year={year}&environment=pilot", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'id="accepted">6<' in done.stdout
    assert "<svg" in done.stdout
