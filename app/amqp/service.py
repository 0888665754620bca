"""Starting the AMQP receiver with the service (KPR_AMQP_URL set) or on its own
(`kpr-mottak amqp listen`), on the intake core."""

from __future__ import annotations

import asyncio

from app.amqp.core_adapter import CoreAdapter
from app.amqp.runner import AmqpRunner
from app.intake.core import IntakeCore
from app.platform.logs import get_logger
from app.state import AppState

log = get_logger(__name__)


def runner_for(state: AppState, interval: float = 5.0) -> AmqpRunner:
    adapter = CoreAdapter(IntakeCore(state), state)
    return AmqpRunner(state.settings, state.sessions, adapter, interval=interval)


def start_amqp(state: AppState) -> asyncio.Task[None] | None:
    """Start the receiver in the running event loop when KPR_AMQP_URL is set; cancelling the
    task stops it (its receiver threads end, the inbox keeps what they stored)."""
    if not state.settings.amqp_url:
        return None
    if not state.settings.amqp_queues:
        log.warning("amqp.no_queues")  # KPR_AMQP_QUEUES names no HER-id
        return None
    return asyncio.create_task(runner_for(state).run(asyncio.Event()), name="kpr-amqp")
