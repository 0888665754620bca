"""Resources that live as long as the app: built in the lifespan, reached via app.state.kpr."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.bodies import BodyGate
from app.keyring import Keyring
from app.outbound import OutboundClient
from app.platform.metrics import Metrics
from app.platform.settings import Settings
from app.platform.sqlite_writer import SqliteWriter
from app.revocation.crls import CrlSources


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    metrics: Metrics
    keyring: Keyring
    # SQLite has one writer at a time; queueing writers here, in the event loop, replaces its
    # busy-handler sleeps (up to 100 ms each) with an orderly wait. None on PostgreSQL.
    sqlite_writer: SqliteWriter | None = field(default=None)
    # Messages processed at once: each large one holds its tree in memory (see
    # docs/performance.md), so the count, not the request rate, bounds the memory.
    intake_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))
    # CRLs fetched from distribution points (app/revocation); None until the lifespan starts.
    revocation: CrlSources | None = field(default=None)
    # The one client for outbound HTTP (app/outbound.py): revocation, the registries and
    # asynchronous replies (app/replies). None until the lifespan starts.
    outbound: OutboundClient | None = field(default=None)
    # NHN's registries (app/registries/lookup.py `for_state`): built on first use; None
    # while KPR_AR_URL is unset (offline) or before the lifespan starts.
    # (typed loosely: app.registries imports this module)
    registries: object | None = field(default=None)
    # Replies queued for the sender's endpoint (app/replies): setting it wakes the sender.
    reply_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # The EDI transport's mail sender for mailto: replies (`app.replies.sender.MailReplies`);
    # None while there is none, and mailto: replies stay in the HTTP exchange.
    # (typed loosely: app.replies imports this module)
    reply_mailer: object | None = field(default=None)

    # POST /ebms bodies being received and spooled (issue 20): built with the app's metrics
    # by `create_app`; this default (the settings' defaults) only for a state made elsewhere.
    bodies: BodyGate = field(
        default_factory=lambda: BodyGate(max_bodies=32, budget_bytes=512 * 1024 * 1024)
    )
