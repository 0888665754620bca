"""Health, readiness, metrics, docs and request ids."""

from __future__ import annotations

import httpx
import pytest

from app.main import create_app
from app.platform.settings import Env, Settings

# health, metrics, docs: no SQL that differs between the databases
pytestmark = pytest.mark.databases("sqlite")


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_readyz_is_ready_when_database_reachable(client: httpx.AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"


async def test_readyz_is_503_when_database_unreachable() -> None:
    settings = Settings(
        _env_file=None,
        env=Env.TEST,
        database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/readyz")
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert (body["status"], body["error"], body["database"]) == (503, "Unavailable", "unreachable")
    assert body["type"].endswith("/Unavailable")


async def test_metrics_exposes_prometheus_text(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert 'kpr_http_requests_total{route="/healthz",status="200"} 1.0' in r.text
    assert "kpr_notification_outbox_depth" in r.text


async def test_request_id_is_always_generated_never_taken_from_the_client(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    first = r.headers["x-request-id"]
    assert first != "abc-123"
    assert len(first) == 32
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] not in {"abc-123", first}  # one per request
    r = await client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert len(r.headers["x-request-id"]) == 32


async def test_openapi_docs_are_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert "/readyz" in spec["paths"]


async def test_unknown_route_gets_json_error_shape(client: httpx.AsyncClient) -> None:
    r = await client.get("/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {
        "type": "https://kpr-mottak.invalid/problems/NotFound",
        "title": "Not found",
        "status": 404,
        "detail": "Not Found",
        "error": "NotFound",
    }


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_platform_probes_need_no_token(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200
