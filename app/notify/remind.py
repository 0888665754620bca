"""Reminders to municipalities that have not delivered a readable message yet: one email per
innsendingsansvarlig, queued in the outbox, at most once per day (a unique key). Norwegian,
no personal data."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession

from app.content.calendar import local_date
from app.identifiers import mask_person_ids
from app.kommuner.repository import kommuner_of
from app.kommuner.years import renumbered_alike
from app.notify import remind_repository as repo
from app.platform.settings import Settings
from app.query.coverage import deliveries
from app.query.reporting import received_window, year_entry

_ENVIRONMENT_NO = {
    "pilot": "pilotmottaket",
    "test": "testmottaket",
    "production": "KPRs mottak for ordinær rapportering",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RemindReport:
    missing: int  # registered municipalities without a readable message
    queued: int  # emails queued now
    already: int  # emails already queued today


def compose_reminder(
    *,
    kommune_nr: str,
    name: str | None,
    year: int,
    environment: str,
    deadline: datetime.date,
    link: str,
) -> tuple[str, str]:
    who = f"{name} kommune ({kommune_nr})" if name else f"kommune {kommune_nr}"
    where = _ENVIRONMENT_NO.get(environment, environment)
    subject = f"KPR: Vi har ikke mottatt IPLOS-melding fra {who} ({where}, {year})"
    lines = [
        "Hei,",
        "",
        f"KPR har ennå ikke mottatt en lesbar IPLOS-melding fra {who} til {where} "
        f"for rapporteringsåret {year}.",
        "",
        "En lesbar melding er en melding som KPR har kvittert med applikasjonskvittering "
        "status 1 (OK) eller 3 (OK, feil i delmelding).",
        f"Fristen for rapporteringen er {deadline.strftime('%d.%m.%Y')}.",
        "",
        "Send gjerne en melding fra EPJ-systemet i god tid, slik at dere er sikre på at "
        "systemene er satt opp riktig før rapporteringsfristen.",
        "",
        f"Les mer hos KPR: {link}",
        "",
        "Denne e-posten inneholder ingen personopplysninger og er sendt automatisk av KPRs "
        "mottak for IPLOS-meldinger.",
        "",
    ]
    return mask_person_ids(subject), mask_person_ids("\n".join(lines))


def _in_year(contact: repo.Contact, names: dict[str, str]) -> repo.Contact:
    """The contact under the number its municipality has in the year's list: a party
    registered before (or after) a one-to-one renumbering is reminded under the year's
    number, and a message under either number counts as delivered."""
    if contact.kommune_nr in names:
        return contact
    alike = sorted(k for k in renumbered_alike([contact.kommune_nr]) if k in names)
    return replace(contact, kommune_nr=alike[0]) if alike else contact


async def queue_reminders(
    session: AsyncSession,
    settings: Settings,
    *,
    year: int,
    environment: str,
    now: datetime.datetime,
) -> RemindReport:
    """Queue reminders for every registered municipality without a readable message in the
    year and environment. The caller commits; the unique `dedup_key` (year, environment,
    municipality, Oslo day, recipient) keeps it to one a day even if two runs race."""
    entry = year_entry(settings, year)
    start, end = received_window(entry)
    delivered = await deliveries(session, environment, start, end)
    readable = {k for k, d in delivered.items() if d.readable > 0}
    names = {k.kommune_nr: k.name for k in await kommuner_of(session, year)}
    day = local_date(now).isoformat()
    contacts = {_in_year(c, names) for c in await repo.registered_contacts(session)}
    todo = sorted(
        (c for c in contacts if not renumbered_alike([c.kommune_nr]) & readable),
        key=lambda c: (c.kommune_nr, c.email),
    )
    keys = {c: f"{year}:{environment}:{c.kommune_nr}:{day}:{c.email}"[:400] for c in todo}
    done = await repo.queued_keys(session, set(keys.values()))
    link = settings.public_base_url.rstrip("/") + "/"
    queued = 0
    for contact, key in keys.items():
        if key in done:
            continue
        subject, body = compose_reminder(
            kommune_nr=contact.kommune_nr,
            name=names.get(contact.kommune_nr),
            year=year,
            environment=environment,
            deadline=entry.deadline,
            link=link,
        )
        repo.queue_reminder(
            session,
            recipient=contact.email,
            subject=subject,
            body=body,
            kommune_nr=contact.kommune_nr,
            dedup_key=key,
            now=now,
        )
        queued += 1
    await session.flush()
    return RemindReport(missing=len({c.kommune_nr for c in todo}), queued=queued, already=len(done))
