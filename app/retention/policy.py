"""Apply the retention settings once: `kpr-mottak retention run` and the server's daily task.

Each category is removed in one transaction with its access-log row, so the log says exactly
what went. Several instances may run it at once: the updates are idempotent."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.platform.logs import get_logger
from app.platform.settings import Settings
from app.retention import repository as repo

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Removed:
    category: str
    before: datetime
    message_ids: tuple[int, ...]
    extra: int = 0  # brukerNr-fid pairs, for history


@dataclass
class RetentionReport:
    removed: list[Removed] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {r.category: len(r.message_ids) + r.extra for r in self.removed}


def _ids(ids: list[int]) -> str:
    if not ids:
        return "none"
    return f"{len(ids)} messages, ids {ids[0]}..{ids[-1]}"


async def apply_retention(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    now: datetime,
    *,
    writer: contextlib.AbstractAsyncContextManager[object] | None = None,
) -> RetentionReport:
    report = RetentionReport()
    async with writer or contextlib.nullcontext(), sessions() as session:
        if settings.retention_raw_days:
            before = now - timedelta(days=settings.retention_raw_days)
            note = f"removed by retention {now:%Y-%m-%d} (KPR_RETENTION_RAW_DAYS)"
            loaders = settings.register_environments
            ids = await repo.remove_raw(session, before, note, loaders)
            report.removed.append(Removed("raw", before, tuple(sorted(ids))))
        if settings.retention_findings_days:
            before = now - timedelta(days=settings.retention_findings_days)
            ids = await repo.redact_apprecs(session, before, now)  # while findings name them
            report.removed.append(Removed("apprec_subjects", before, tuple(ids)))
            ids = await repo.remove_finding_subjects(session, before)
            report.removed.append(Removed("finding_subjects", before, tuple(ids)))
            loaders = settings.register_environments
            ids = await repo.remove_register_identifiers(session, before, loaders)
            report.removed.append(Removed("register_identifiers", before, tuple(ids)))
        if settings.retention_history_days:
            before = now - timedelta(days=settings.retention_history_days)
            ids, pairs = await repo.remove_history(session, before)
            report.removed.append(Removed("history", before, tuple(ids), pairs))
            ids = await repo.remove_register_rows(session, before, settings.register_environments)
            report.removed.append(Removed("register", before, tuple(ids)))
        for removed in report.removed:
            if not removed.message_ids and not removed.extra:
                continue
            ids = list(removed.message_ids)
            what = {
                "raw": "raw request bodies",
                "finding_subjects": "brukerNr/fid in findings",
                "apprec_subjects": "brukerNr/fid in stored AppRec texts",
                "history": f"IPLOS history (and {removed.extra} brukerNr-fid pairs)",
                "register": "register rows of environments no loader takes",
                "register_identifiers": "fids in register rows the loader has confirmed",
            }[removed.category]
            repo.log_removal(
                session,
                at=now,
                action=f"retention.{removed.category}",
                resource=f"{what} received before {removed.before:%Y-%m-%d}: {_ids(ids)}",
                message_ids=ids,
            )
        await session.commit()
    log.info("retention.applied", **report.summary())
    return report
