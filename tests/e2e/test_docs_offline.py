"""/docs inside the health network: headless Chromium loads the page from a real server with
every host but 127.0.0.1 unresolvable, and Swagger UI shows the operations."""

from __future__ import annotations

import subprocess
import tempfile

import httpx
import pytest

from tests.e2e.conftest import Server, chromium

# the second tier (`make test-all`): Chromium
pytestmark = [pytest.mark.e2e, pytest.mark.tools, pytest.mark.slow]


def test_docs_pages_reference_only_the_service_itself(server: Server) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{server.base_url}{page}", timeout=10).text
        assert "/docs-assets/" in html
        assert "cdn" not in html.lower()
        assert "fonts.googleapis" not in html
    js = httpx.get(f"{server.base_url}/docs-assets/swagger-ui-bundle.js", timeout=10)
    assert js.status_code == 200
    assert len(js.content) > 100_000


def test_swagger_ui_renders_the_operations_with_no_request_leaving_the_machine(
    server: Server,
) -> None:
    browser = chromium()
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                # any name but the local server fails to resolve: a CDN would leave it blank
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"{server.base_url}/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert "opblock" in dom, dom[-2000:]  # Swagger UI's operation blocks
    assert "/api/v1/messages" in dom
    assert "/api/v1/kommuner/{kommune_nr}/feilliste" in dom
