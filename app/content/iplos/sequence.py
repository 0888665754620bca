"""What ties notifications together within a message and over time: GUIDs, løpenummer,
forrige-GUID chain, references, brukerNr, service starts and the reporting calendar."""

from __future__ import annotations

import datetime

from app.content.calendar import local_date
from app.content.iplos import resend, service_start, timeliness_rows
from app.content.iplos import rules as R
from app.content.iplos.codes import _ID_KIND_OF_TYPE, _OSLO, RETIRED_TJENESTETYPER_UNTIL
from app.content.iplos.rows import _Row, tjenestetype_valid
from app.content.model import (
    ContentContext,
    FidChange,
    IplosHistory,
    add_to_ranges,
    fid_change,
    gaps,
    pair_moves,
)
from app.core.findings import Finding, Subject
from app.identifiers import (
    mask_person_ids,
)


def _local_date(moment: datetime.datetime | None) -> datetime.date | None:
    """The date in Norway of an instant (a naive one is already Norwegian time)."""
    if moment is None:
        return None
    return (moment.astimezone(_OSLO) if moment.tzinfo is not None else moment).date()


def _check_sequence(rows: list[_Row], unit: str, ctx: ContentContext) -> list[Finding]:
    """What ties a notification to others: its GUID, løpenummer, forrige-GUID chain,
    references and brukerNr. Only a GUID used twice for different content drops a row; the
    rest are warnings (the Annotations' handling for order and chain is 9, no action), so
    messages may arrive in any order and a dropped row can be sent again. Returns the
    message-level findings (the gap report)."""
    _check_guids(rows, ctx.history)
    live = [r for r in rows if not r.already_stored]
    _check_service_starts(live, unit, ctx.history)
    _check_lopenr(live, unit, ctx.history)
    _check_chain(live, unit, ctx.history)
    _check_refs(live, ctx.history)
    _check_hendelser(live, ctx.history)
    _check_brukere(live, unit, ctx.history)
    return _gap_findings(rows, unit, ctx.history)


def _check_guids(rows: list[_Row], history: IplosHistory) -> None:
    """A GUID names one notification: a second row with it in the message is dropped (GUIDs
    compared normalised, so `{ABC-...}` and `abc-...` are one); a row whose GUID was stored
    before is no error when its content is identical (a resend) and dropped when it differs."""
    first: set[str] = set()
    for row in rows:
        loc = f"/Melding/Notifikasjon[{row.index}]/@notifikasjonGUID"
        if row.guid in first:
            row.add(
                R.GUID_UNIQUE,
                loc,
                "notifikasjonGUID er brukt på en tidligere notifikasjon i samme melding "
                "(store og små bokstaver og klammer regnes som like); denne er ikke tatt imot.",
            )
            continue
        first.add(row.guid)
        stored = history.notifications.get(row.guid)
        if stored is None or row.dropped:
            continue
        if resend.same_notification(stored, row.digest, row.core_digest):
            row.already_stored = True
        else:
            row.add(
                R.GUID_KNOWN,
                loc,
                "En notifikasjon med denne notifikasjonGUID er tatt imot tidligere med annet "
                "innhold.",
            )


def _check_service_starts(rows: list[_Row], unit: str, history: IplosHistory) -> None:
    """The retired codes `_check_event` left to the service's start (see
    app/content/iplos/service_start.py): valid when the service began before the code's end,
    an error when after it, accepted with a warning when KPR does not know the start."""
    in_message: dict[tuple[str, str], datetime.date] | None = None
    until = RETIRED_TJENESTETYPER_UNTIL
    for row in rows:
        if row.dropped:
            continue
        for ev in row.events:
            tt = service_start.code_of(ev.tjeneste_type)
            if not service_start.needs_start(ev.kind, tt) or tjenestetype_valid(tt, ev.when):
                continue
            if in_message is None:
                in_message = service_start.starts_in(rows)
            start = service_start.start_of(
                unit, row.bruker_nr, ev.tjeneste_id, in_message, history.service_starts
            )
            loc = f"{ev.base}/@tjenesteType"
            if start is None:
                row.add(
                    R.TJENESTETYPE_START_UNKNOWN,
                    loc,
                    f"tjenesteType {tt} er utgått for tjenester som starter etter "
                    f"{until:%d.%m.%Y}, og KPR kjenner ikke starten på tjenesten "
                    "(TjenesteStart for samme brukerNr og tjenesteID). Hendelsen er tatt imot.",
                )
            elif not tjenestetype_valid(tt, start):
                row.add(
                    R.TJENESTETYPE_CODE,
                    loc,
                    f"tjenesteType {tt} er utgått og kan ikke brukes for tjenester som starter "
                    f"etter {until:%d.%m.%Y}; tjenesten startet {start:%d.%m.%Y}.",
                )


def _check_hendelser(rows: list[_Row], history: IplosHistory) -> None:
    """An event names itself by hendelseGUID: the same GUID in another notification (before,
    or earlier in this message) is the same event sent again. A warning: the row is kept and
    the register's episodes count the event once. An identical resend of a stored
    notification repeats its events under the same notification: no warning."""
    seen: dict[str, str] = {}
    for row in rows:
        if row.already_stored:
            continue
        for ev in row.events:
            g = ev.hendelse_guid
            if not g:
                continue
            before = seen.get(g) or history.hendelser.get(g)
            if before is not None and before != row.guid:
                row.add(
                    R.HENDELSE_GUID_KNOWN,
                    f"{ev.base}/@hendelseGUID",
                    f"hendelseGUID {g} er sendt før i notifikasjon {before}.",
                )
            seen.setdefault(g, row.guid)


def _check_lopenr(rows: list[_Row], unit: str, history: IplosHistory) -> None:
    """A løpenummer belongs to one notification: warn when another GUID used it before."""
    seen: dict[int, str] = {}
    for row in rows:
        if row.lopenr is None or row.dropped:
            continue
        loc = f"/Melding/Notifikasjon[{row.index}]/@notifikasjonLopeNr"
        earlier = seen.get(row.lopenr)
        stored = history.guid_by_lopenr.get((unit, row.lopenr))
        if earlier is not None and earlier != row.guid:
            row.add(
                R.LOPENR_ORDER,
                loc,
                f"notifikasjonLopeNr {_nr(row.lopenr)} er brukt på flere notifikasjoner i "
                "meldingen.",
            )
        elif stored is not None and stored != row.guid:
            row.add(
                R.LOPENR_ORDER,
                loc,
                f"notifikasjonLopeNr {_nr(row.lopenr)} er brukt før av en annen notifikasjon fra "
                "kommunen.",
            )
        seen.setdefault(row.lopenr, row.guid)


def _check_chain(rows: list[_Row], unit: str, history: IplosHistory) -> None:
    """notifikasjonForrigeGUID names the notification with the løpenummer just below, when
    KPR has that one (in this message or before); an unknown predecessor is a gap, reported
    once for the message by `_gap_findings`."""
    in_message = {r.lopenr: r.guid for r in rows if r.lopenr is not None and not r.dropped}
    for row in rows:
        if row.lopenr is None or row.dropped:
            continue
        before = in_message.get(row.lopenr - 1) or history.guid_by_lopenr.get(
            (unit, row.lopenr - 1)
        )
        if before is not None and row.forrige != before:
            row.add(
                R.FORRIGE_CHAIN,
                f"/Melding/Notifikasjon[{row.index}]/@notifikasjonForrigeGUID",
                f"notifikasjonForrigeGUID er ikke GUID-en til notifikasjonen med løpenummer "
                f"{_nr(row.lopenr - 1)}.",
            )


def _check_refs(rows: list[_Row], history: IplosHistory) -> None:
    """A correction or annulment names its original (N). One that names a notification KPR
    has not (yet) accepted is kept: the original may arrive later, or may itself have been
    dropped, and the correction then carries the valid content."""
    originals = {r.guid: r.status for r in rows if not r.dropped}
    refused_in_message = {r.guid: r.index for r in rows if r.dropped}
    for row in rows:
        if row.ref is None or row.status not in ("M", "C") or row.dropped:
            continue
        loc = f"/Melding/Notifikasjon[{row.index}]/@notifikasjonRef"
        target = originals.get(row.ref)
        if target is None and (stored := history.notifications.get(row.ref)) is not None:
            target = stored.status
        if target is None:
            row.add(
                R.REF_UNKNOWN,
                loc,
                resend.unknown_ref_text(
                    row.status, refused_in_message.get(row.ref), history.refused.get(row.ref)
                ),
            )
        elif target != "N":
            row.add(
                R.REF_UNKNOWN,
                loc,
                f"notifikasjonRef peker på en notifikasjon med status {target}, ikke på "
                "originalen (status N). Notifikasjonen er lagret.",
            )


def _check_brukere(rows: list[_Row], unit: str, history: IplosHistory) -> None:
    """brukerNr ↔ personidentifikasjon. A brukerNr now reported with another number is a
    warning (usually a corrected number, or a new one after a legal change): the row is
    kept, and a correction (M/C) replaces the pair. A person under a new brukerNr: warning."""
    by_bruker: dict[str, str] = {}  # brukerNr -> the fid the pair holds after the rows so far
    by_fid: dict[str, str] = {}
    history_by_fid: dict[str, str] | None = None
    for row in rows:
        # birth dates (typeID 9) are shared by many people: no identity to compare
        if (
            row.dropped
            or not row.fid_ok
            or row.type_id not in _ID_KIND_OF_TYPE
            or not row.bruker_nr
            or len(row.bruker_nr) > 100
        ):
            continue
        loc = f"{row.base}/Bruker/@brukerNr"
        before = by_bruker.get(row.bruker_nr) or history.bruker_fid.get((unit, row.bruker_nr))
        change = _FID_CHANGE_RULE.get(fid_change(before, row.fid)) if before is not None else None
        if change is R.BRUKERNR_STABLE:
            row.add(
                R.BRUKERNR_STABLE,
                loc,
                "brukerNr er tidligere rapportert med en annen personidentifikasjon i kommunen. "
                + (
                    "Korreksjonen er lagret og erstatter den tidligere personidentifikasjonen."
                    if row.status in ("M", "C")
                    else "Notifikasjonen er lagret. Er personidentifikasjonen rettet, send en "
                    "korreksjon (status M); ellers kontroller brukerNr i EPJ."
                ),
            )
        elif change is not None:
            row.add(
                change,
                loc,
                "brukerNr er tidligere rapportert med en annen type identifikasjon; "
                "notifikasjonen er tatt imot som samme person.",
            )
        if pair_moves(before, row.fid, row.status):
            by_bruker[row.bruker_nr] = row.fid
        if history_by_fid is None:
            history_by_fid = {f: b for (k, b), f in history.bruker_fid.items() if k == unit}
        other = history_by_fid.get(row.fid) or by_fid.get(row.fid)
        if other is not None and other != row.bruker_nr:
            row.add(
                R.BRUKERNR_CHANGED,
                loc,
                "Personen er tidligere rapportert med et annet brukerNr i kommunen.",
            )
        by_fid.setdefault(row.fid, row.bruker_nr)


_MAX_GAPS_SHOWN = 5


def _nr(lopenr: int) -> str:
    # a løpenummer of 10+ digits could be a fødselsnummer typed in the wrong field: the one
    # person-id masker decides, as everywhere else
    return mask_person_ids(str(lopenr))


def _gap_findings(rows: list[_Row], unit: str, history: IplosHistory) -> list[Finding]:
    """One warning naming the løpenummer still missing between the lowest and the highest
    KPR has from the municipality (in this environment), this message included."""
    # dropped rows of this message are already named by their own errors: not a gap here,
    # but they are not stored, so the next message reports them until they are sent again
    numbers = [r.lopenr for r in rows if r.lopenr is not None]
    missing = gaps(add_to_ranges(history.received.get(unit, ()), numbers))
    if not missing:
        return []
    total = sum(hi - lo + 1 for lo, hi in missing)
    shown = ", ".join(
        _nr(lo) if lo == hi else f"{_nr(lo)}–{_nr(hi)}" for lo, hi in missing[:_MAX_GAPS_SHOWN]
    )
    more = (
        f" og {len(missing) - _MAX_GAPS_SHOWN} hull til" if len(missing) > _MAX_GAPS_SHOWN else ""
    )
    return [
        Finding(
            R.LOPENR_GAP,
            "/Melding/Notifikasjon/@notifikasjonLopeNr",
            f"KPR mangler {_nr(total)} løpenummer fra kommunen: {shown}{more}. Send "
            "notifikasjonene som mangler (med sine opprinnelige løpenummer), eller kontroller "
            "uttrekket i EPJ.",
            Subject(kommune_nr=unit),
        )
    ]


# What a brukerNr's changed number is warned as (`FidChange`); no warning when absent.
_FID_CHANGE_RULE = {
    FidChange.KIND: R.BRUKERNR_ID_KIND,
    FidChange.OTHER: R.BRUKERNR_STABLE,
    FidChange.UNREADABLE: R.BRUKERNR_STABLE,
}


def _calendar_findings(rows: list[_Row], unit: str, ctx: ContentContext) -> list[Finding]:
    """Timeliness of the message against the configured reporting calendar (see
    app/content/calendar.py): production (and offline) only; a pilot address gets its pilot
    window instead; test addresses are not judged."""
    calendar = ctx.calendar
    if calendar is None or ctx.environment == "test":
        return []
    today = local_date(ctx.now)
    if ctx.environment == "pilot":
        windows = calendar.pilot_windows()
        if not windows or any(lo <= today <= hi for lo, hi in windows):
            return []
        shown = "; ".join(f"{lo:%d.%m.%Y}–{hi:%d.%m.%Y}" for lo, hi in windows)
        return [
            Finding(
                R.CALENDAR_PILOT_WINDOW,
                "/Melding",
                f"Meldingen er mottatt {today:%d.%m.%Y}; pilotperioden er {shown}.",
                Subject(kommune_nr=unit),
            )
        ]
    return timeliness_rows.calendar_findings(rows, unit, ctx)
