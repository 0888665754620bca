"""The FastAPI application: create_app(settings) and its lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession

from app import __version__
from app.api.docs import install_docs
from app.api.errors import PROBLEM_JSON, install_error_handlers, problem
from app.api.parties import router as parties_router
from app.api.router import router as read_router
from app.bodies import BodyGate
from app.dev.devsink import run_sink
from app.exposure import metrics_allowed
from app.feedback.background import start_refresher
from app.feedback.pages import router as feedback_pages
from app.inflight import InFlightMiddleware
from app.intake.router import router as intake_router
from app.keyring import load_keyring
from app.lifecycle import ops_metrics, start_operations
from app.notify.repository import pending_notifications
from app.notify.sender import start_background
from app.platform import sqlite_writer
from app.platform.db import create_engine, ping, session_factory
from app.platform.logs import configure_logging, get_logger
from app.platform.metrics import Metrics
from app.platform.middleware import RequestContextMiddleware
from app.platform.settings import Settings
from app.readiness import READY_TIMEOUT_SECONDS, readiness_detail
from app.register.confirmed import oldest_unconfirmed
from app.state import AppState

log = get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    bodies = BodyGate.for_settings(settings, metrics.registry)  # once per app: its metrics

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_format)
        engine = create_engine(
            settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        app.state.kpr = AppState(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            metrics=metrics,
            keyring=load_keyring(settings),
            sqlite_writer=sqlite_writer.for_database(settings.database_url),
            intake_slots=asyncio.Semaphore(settings.max_concurrent_messages),
            bodies=bodies,
        )
        bodies.prepare()
        log.info(
            "service.started",
            env=settings.env.value,
            receivers={str(k): v.value for k, v in settings.receivers.items()},
        )
        notifier = start_background(app.state.kpr, dev_sink=run_sink)  # dev, no SMTP: var/mail/
        ops = await start_operations(app.state.kpr)  # CRL refresher, SIGHUP reload, pid file
        feedback = start_refresher(app.state.kpr)  # the open feedback's aggregates (issue 14)
        try:
            yield
        finally:
            await feedback.stop()
            await ops.stop()
            await notifier.stop()
            await engine.dispose()
            log.info("service.stopped")

    app = FastAPI(
        title="kpr-mottak",
        version=__version__,
        description="KPR's receiving service for IPLOS messages (ebMS 2.0, MsgHead, AppRec).",
        lifespan=lifespan,
        docs_url=None,  # served offline by app.api.docs
        redoc_url=None,
        # KPR_PUBLIC_DOCS=false: no /openapi.json, /docs or /redoc at all
        openapi_url="/openapi.json" if settings.public_docs else None,
    )
    if settings.public_docs:
        install_docs(app)
    install_error_handlers(app)
    app.add_middleware(InFlightMiddleware, gauge=ops_metrics(metrics.registry).in_progress)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    _platform_routes(app, metrics)
    app.include_router(parties_router)
    app.include_router(read_router)
    app.include_router(feedback_pages)
    app.include_router(intake_router)
    return app


async def _unconfirmed_ages(session: AsyncSession, environments: Sequence[str]) -> dict[str, float]:
    """Per loader environment, seconds since the oldest message the loader has not
    confirmed was received (0 when it is up to date)."""
    now = datetime.now(UTC)
    oldest = await oldest_unconfirmed(session, environments)
    return {e: (now - at).total_seconds() if at else 0.0 for e, at in oldest.items()}


async def _register_detail(state: AppState) -> dict[str, object]:
    """The register's loader falling behind, for alerting: never makes the instance unready
    (every instance shares the database and the loader)."""
    try:
        async with state.sessions() as session:
            ages = await _unconfirmed_ages(session, state.settings.register_environments)
    except Exception as exc:  # the detail is optional; readiness is the ping's
        log.warning("service.register_detail_unavailable", error_type=type(exc).__name__)
        return {}
    return {"register_unconfirmed_oldest_seconds": {e: round(a) for e, a in ages.items()}}


def _platform_routes(app: FastAPI, metrics: Metrics) -> None:
    @app.get("/healthz", tags=["platform"], summary="Liveness (no I/O)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz", tags=["platform"], summary="Readiness (database reachable)", response_model=None
    )
    async def readyz() -> JSONResponse:
        state = app.state.kpr
        detail = readiness_detail(state)
        try:
            await asyncio.wait_for(ping(state.engine), timeout=READY_TIMEOUT_SECONDS)
        except Exception as exc:  # any driver error means "not ready", never a 500
            log.warning("service.not_ready", error_type=type(exc).__name__)
            # problem details (the API's one error shape), with the readiness fields beside
            body = problem(503, "Unavailable", "the database does not answer")
            return JSONResponse(
                {**body, "database": "unreachable", **detail},
                status_code=503,
                media_type=PROBLEM_JSON,
            )
        return JSONResponse(
            {"status": "ready", "database": "ok", **detail, **await _register_detail(state)}
        )

    @app.get("/metrics", tags=["platform"], summary="Prometheus metrics", response_class=Response)
    async def prometheus(request: Request) -> Response:
        state: AppState = app.state.kpr
        if not metrics_allowed(state.settings, request.headers.get("authorization")):
            return JSONResponse(
                problem(401, "Unauthorized", "/metrics needs its bearer token (KPR_METRICS_TOKEN)"),
                status_code=401,
                media_type=PROBLEM_JSON,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if state.revocation is not None:
            state.revocation.export_metrics(datetime.now(UTC))
        try:
            async with state.sessions() as session:
                metrics.outbox_depth.set(await pending_notifications(session))
                lag = await _unconfirmed_ages(session, state.settings.register_environments)
            for environment, age in lag.items():
                metrics.register_unconfirmed_oldest.labels(environment).set(age)
        except Exception as exc:  # metrics must answer even when the database does not
            log.warning("metrics.outbox_depth_unavailable", error_type=type(exc).__name__)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
