"""Where a sender's answers go: the queues its AR entry names (`E_SB_ASYNC`, `E_SB_ERROR`,
cached in `registry_entry` by app/registries), else Helsenorge's `{her}_async` and
`{her}_error`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.amqp.envelope import queue_names
from app.models import RegistryEntry
from app.registries.models import queue_name


@dataclass(frozen=True, slots=True)
class ReplyQueues:
    apprec: str  # the AppRec: the sender's asynchronous queue
    error: str


async def reply_queues(session: AsyncSession, her_id: int) -> ReplyQueues:
    """The registry's addresses (the queue is the address's last segment), or the
    Helsenorge names when the registry has none for the HER-id."""
    names = queue_names(her_id)
    entry = await session.get(RegistryEntry, her_id)
    if entry is None:
        return ReplyQueues(names["async"], names["error"])
    return ReplyQueues(
        queue_name(entry.async_queue) or names["async"],
        queue_name(entry.error_queue) or names["error"],
    )
