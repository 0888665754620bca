"""Starting the AMQP receiver with the service (KPR_AMQP_URL set) or on its own
(`kpr-mottak amqp listen`), on the intake core."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from app.amqp.core_adapter import CoreAdapter
from app.amqp.runner import AmqpRunner
from app.intake.core import IntakeCore
from app.logging import get_logger
from app.state import AppState

log = get_logger(__name__)


@dataclass
class AmqpHandle:
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        self.stop_event.set()
        if self.task is not None:
            await self.task


def runner_for(state: AppState, interval: float = 5.0) -> AmqpRunner:
    adapter = CoreAdapter(IntakeCore(state), state)
    return AmqpRunner(state.settings, state.sessions, adapter, interval=interval)


def start_amqp(state: AppState) -> AmqpHandle:
    """Start the receiver in the running event loop when KPR_AMQP_URL is set."""
    handle = AmqpHandle()
    if state.settings.amqp_url and state.settings.amqp_queues:
        runner = runner_for(state)
        handle.task = asyncio.create_task(runner.run(handle.stop_event), name="kpr-amqp")
    elif state.settings.amqp_url:
        log.warning("amqp.no_queues")  # KPR_AMQP_QUEUES names no HER-id
    return handle
