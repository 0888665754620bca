"""Types shared by the content plug-ins: what a check needs (context, history) and what it
returns (findings plus the extracted notifications and contacts the caller stores)."""

from __future__ import annotations

import datetime
import functools
import hashlib
import itertools
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import IO

from app.content.calendar import ReportingCalendar
from app.core.findings import Consequence, Finding
from app.identifiers import PersonId, check_person_id, parse_ddmmyy
from app.kommuner.years import KommuneYears

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
# typeID (kodeverk 9032) whose fid identifies a person: fødselsnummer, D-nummer, H-nummer.
# typeID 9 carries a birth date (ddmmyy), which many people share.
PERSON_ID_TYPES = frozenset({"1", "2", "3"})


_XS_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:Z|[+-][0-9]{2}:[0-9]{2})?")


# Cached: a large message repeats the same few hundred dates in every notification.
@functools.lru_cache(maxsize=4096)
def parse_xs_date(value: str) -> datetime.date | None:
    """An xs:date as a calendar date. A time zone (`2018-01-03+01:00`, `...Z`), which xs:date
    allows, names the place the date belongs to, not another day: it is dropped. None when
    the text is not a date with a 4-digit year."""
    m = _XS_DATE.fullmatch(value.strip())
    if m is None:
        return None
    try:
        return datetime.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def normalize_guid(value: str) -> str:
    """GUIDs are compared without braces and in lower case ({ABC-...} == abc-...)."""
    return value.strip().strip("{}").lower()


# ipl:guid: 8-4-4-4-12 hex digits, optionally in braces (XPR-ipl-56.0.0.xsd)
_GUID = re.compile(
    r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\})"
)
# A key made from a malformed GUID starts with this: no GUID does, so the two never meet.
MALFORMED_GUID_PREFIX = "~"


def is_guid(value: str) -> bool:
    """`value` is a GUID as the schema writes it (ipl:guid)."""
    return _GUID.fullmatch(value) is not None


def guid_key(value: str) -> str:
    """The key a notification (or event) is known by: its GUID normalised, or, when the
    value is no GUID (a malformed notifikasjonGUID is kept with an error, issue 21), `~` and
    the first 35 hex digits of the SHA-256 of the value as sent: 36 characters like a GUID,
    the same for the same value (a resend, a correction naming it), never a real GUID.
    Empty stays empty (a missing value). docs/rules.md."""
    if not value or is_guid(value.strip()):
        return normalize_guid(value)
    return MALFORMED_GUID_PREFIX + hashlib.sha256(value.encode()).hexdigest()[:35]


class FidChange(Enum):
    """What it means that a brukerNr stored with one number now comes with another (valid)
    fødselsnummer, D- or H-nummer (`fid_change`): the one source for the warning the checks
    give (app/content/iplos/sequence.py) and for whether the stored number moves."""

    SAME = "same"
    # a birth date (typeID 9, ddmmyy: stored by earlier versions) identifies no one: nothing
    # to compare, and the person's number takes its place
    NO_IDENTITY = "no_identity"
    # another kind of number: the same person (a D- or H-nummer followed by a fødselsnummer,
    # or an EPJ correcting the kind); a warning, never a drop, and the new number is kept
    KIND = "kind"
    # another number of the same kind: another person (a person's number does not change
    # within its kind; the rare exception is handled by KPR manually)
    OTHER = "other"
    # the stored value is no valid number: warned about as another person, and replaced
    UNREADABLE = "unreadable"

    @property
    def moves(self) -> bool:
        """Whether the new number replaces the stored one also under an N row."""
        return self in (FidChange.NO_IDENTITY, FidChange.KIND, FidChange.UNREADABLE)


def fid_change(before: str, fid: str) -> FidChange:
    """How `fid` relates to the number `before` stored for the same brukerNr."""
    if before == fid:
        return FidChange.SAME
    if parse_ddmmyy(before) is not None:
        return FidChange.NO_IDENTITY
    old, new = check_person_id(before), check_person_id(fid)
    if not isinstance(old, PersonId):
        return FidChange.UNREADABLE
    if isinstance(new, PersonId) and old.kind is not new.kind:
        return FidChange.KIND
    return FidChange.OTHER


def pair_moves(before: str | None, fid: str, status: str) -> bool:
    """Whether an accepted row with `fid` (a person's number) becomes its brukerNr's stored
    number, replacing `before`: when there is none yet, on a correction or annulment (M/C),
    and when `fid_change` says so (see `FidChange.moves`). Another number of the same kind
    under an N row is a warning (IPL-BRUKERNR-STABLE) and keeps the pair. The one rule for
    the checks and for what is stored."""
    return before is None or status in ("M", "C") or fid_change(before, fid).moves


@dataclass(frozen=True, slots=True)
class StoredNotification:
    """What the history keeps of an accepted notification, as the rules need it."""

    status: str  # N | M | C
    lopenr: int | None
    content_sha256: str  # the notification's content as read (see Notification)
    # the same without the times and pasientGUID a resend may renew (issue 21); None for rows
    # stored before it was kept
    core_sha256: str | None = None


Ranges = tuple[tuple[int, int], ...]


def add_to_ranges(ranges: Ranges, numbers: Iterable[int]) -> Ranges:
    """Sorted, disjoint, non-adjacent ranges covering `ranges` and `numbers`."""
    # A message's numbers come as a few long runs: sorting the numbers and merging their
    # runs first keeps the ranges to sort to a handful (not one per number).
    points: list[tuple[int, int]] = [(lo, hi) for lo, hi in ranges]
    run_lo = run_hi = None
    for n in sorted(numbers):
        if run_hi is not None and n <= run_hi + 1:
            run_hi = n
        else:
            if run_lo is not None and run_hi is not None:
                points.append((run_lo, run_hi))
            run_lo = run_hi = n
    if run_lo is not None and run_hi is not None:
        points.append((run_lo, run_hi))
    points.sort()
    merged: list[list[int]] = []
    for lo, hi in points:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple((lo, hi) for lo, hi in merged)


def gaps(ranges: Ranges) -> Ranges:
    """The numbers missing between the lowest and the highest received."""
    return tuple((a_hi + 1, b_lo - 1) for (_, a_hi), (b_lo, _) in itertools.pairwise(ranges))


@dataclass(frozen=True, slots=True)
class IplosHistory:
    """A frozen snapshot of what earlier messages established in one environment (pilot,
    test or production: they never share history), loaded by the caller for the keys the
    message mentions (`HistoryKeys`).

    Keys are municipality numbers (the reporting unit: a message is attributed to its first
    `Kommune`, see app/content/iplos/validate.py). GUIDs are normalized (`normalize_guid`).
    `bruker_fid` holds the fid last reported for (kommune, brukerNr) with a typeID that
    identifies a person (never a typeID 9 birth date): personal data, keep it in the database
    only.
    """

    received: Mapping[str, Ranges] = field(default_factory=dict)  # kommune -> løpenummer
    notifications: Mapping[str, StoredNotification] = field(default_factory=dict)  # by GUID
    guid_by_lopenr: Mapping[tuple[str, int], str] = field(default_factory=dict)
    bruker_fid: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # hendelseGUID -> the notifikasjonGUID it was stored under (the register store's events)
    hendelser: Mapping[str, str] = field(default_factory=dict)
    # (kommune, brukerNr, tjenesteID) -> the TjenesteStart's hendelseDato the register store
    # holds: a service type code is judged at the service's start (issue 21)
    service_starts: Mapping[tuple[str, str, str], datetime.date] = field(default_factory=dict)
    # notifikasjonGUID -> when KPR first received it on a row it did not take (dropped, or in
    # a rejected message), for GUIDs the message mentions that no stored row has
    refused: Mapping[str, datetime.datetime] = field(default_factory=dict)

    def updated_with(self, notifications: Iterable[Notification]) -> IplosHistory:
        """The history after storing the accepted (not dropped) `notifications`: their GUIDs,
        løpenummer and brukerNr pairs (`received_with`, `pairs_set_by`)."""
        rows = [n for n in notifications if not n.dropped]
        known = dict(self.notifications)
        by_lopenr = dict(self.guid_by_lopenr)
        for n in rows:
            known[n.guid] = StoredNotification(
                n.status, n.lopenr, n.content_sha256, n.content_core_sha256 or None
            )
            if n.lopenr is not None:
                by_lopenr.setdefault((n.kommune_nr, n.lopenr), n.guid)
        return IplosHistory(
            self.received_with(rows),
            known,
            by_lopenr,
            {**self.bruker_fid, **self.pairs_set_by(rows)},
            self.hendelser,
            self.service_starts,
            self.refused,
        )

    def received_with(self, notifications: Iterable[Notification]) -> dict[str, Ranges]:
        """The received løpenummer ranges after storing the accepted `notifications`."""
        received = dict(self.received)
        numbers: dict[str, list[int]] = {}
        for n in notifications:
            if not n.dropped and n.lopenr is not None:
                numbers.setdefault(n.kommune_nr, []).append(n.lopenr)
        for kommune, nums in numbers.items():
            received[kommune] = add_to_ranges(received.get(kommune, ()), nums)
        return received

    def pairs_set_by(self, notifications: Iterable[Notification]) -> dict[tuple[str, str], str]:
        """The brukerNr pairs the accepted `notifications` set, as they stand after them: a
        pair is set by the first row of a brukerNr and replaced only by a correction or
        annulment (M/C); an N row with another number keeps the pair and is warned about
        (`IPL-BRUKERNR-STABLE`). Only the pairs they touch, not a copy of all of them: the
        store of a 100 000-notification message needs no more."""
        touched: dict[tuple[str, str], str] = {}
        for n in notifications:
            if n.dropped or not n.identifies_person:
                continue
            key = (n.kommune_nr, n.bruker_nr)
            current = touched[key] if key in touched else self.bruker_fid.get(key)
            if pair_moves(current, n.fid, n.status):
                touched[key] = n.fid
        return touched


@dataclass(frozen=True, slots=True)
class HistoryKeys:
    """What a message refers to, read before validation, so the caller loads only the history
    rows it needs (not a municipality's whole past). GUIDs normalized."""

    guids: frozenset[str] = frozenset()  # the message's own notification GUIDs and its refs
    bruker_nrs: frozenset[str] = frozenset()
    fids: frozenset[str] = frozenset()  # personal data: used in a query, never logged
    lopenrs: frozenset[int] = frozenset()  # its løpenummer and each one's predecessor
    hendelse_guids: frozenset[str] = frozenset()  # its events' hendelseGUID
    # (brukerNr, tjenesteID) of events that end, pause or change a service whose type code
    # needs its start date (a retired code): rare, so the look-up stays small
    services: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class ContentContext:
    """Everything a content check needs besides the bytes. `allowed_kommuner` None = no check
    (offline `validate`); `allow_synthetic` True on pilot/test addresses only."""

    now: datetime.datetime
    allowed_kommuner: frozenset[str] | None = None
    allow_synthetic: bool = False
    history: IplosHistory = field(default_factory=IplosHistory)
    calendar: ReportingCalendar | None = None
    # the receiver address's tag (pilot | test | production); None offline, judged like
    # production
    environment: str | None = None
    # When the sender made the extraction (MsgHead GenDate): no event may be dated after it.
    extracted_at: datetime.datetime | None = None
    # The municipality numbers per reporting year (IPL-KOMMUNE-YEAR); None: the shipped lists
    kommune_years: KommuneYears | None = None
    # The message reuses the MsgId of a message KPR rejected, first received then: it is that
    # message corrected, and its originals are judged as corrections for timeliness
    corrects_rejected_at: datetime.datetime | None = None


@dataclass(frozen=True, slots=True)
class ServiceEvent:
    """One event element of a notification (TjenesteStart, TjenesteSlutt, ...). The schema's
    sequence of optional elements lets one notification carry several; each is kept."""

    kind: str  # TjenesteStart | MidlertidigStoppFra | MidlertidigStoppTil | ...
    tjeneste_type: str
    tjeneste_org_nr: str | None  # None when missing or blanked by a warning
    tjeneste_id: str
    hendelse_guid: str  # normalized
    hendelse_dato: datetime.date | None  # xs:date read as a date (a time zone is ignored)


# The attributes XPR(ipl) 56.0.0 gives the ipl module, in the order `RawNotification` packs
# them (those marked `moduleConstraint I` are not kept).
NOTIFIKASJON_FIELDS = (
    "statusNotifikasjon",
    "notifikasjonTid",
    "notifikasjonGUID",
    "notifikasjonForrigeGUID",
    "notifikasjonLopeNr",
    "notifikasjonRef",
)
EVENT_FIELDS = (
    "tjenesteType",
    "hendelseRegTid",
    "tjenesteOrgNr",
    "hendelseDato",
    "tjenesteID",
    "hendelseGUID",
    "midlertidigStoppID",
)
BRUKER_FIELDS = ("pasientGUID", "brukerNr", "fid", "typeID", "bydel")
# XML 1.0 allows neither character in an attribute value: safe as separator and as "absent"
_SEP, _ABSENT = "\x1f", "\x1e"
_PER_EVENT = 1 + len(EVENT_FIELDS) + len(BRUKER_FIELDS)


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One event element's attributes and its Bruker's, exactly as sent (the register store
    keeps them; no rule reads these)."""

    kind: str
    attrs: Mapping[str, str]
    bruker: Mapping[str, str]  # empty when the event has no Bruker


def _fields(names: tuple[str, ...], values: list[str]) -> dict[str, str]:
    return {n: v for n, v in zip(names, values, strict=True) if v != _ABSENT}


class RawSpool:
    """The packed values of a streamed message's notifications: in memory up to
    `IN_MEMORY` bytes (about 1 500 notifications), as a request's body is, and past that in
    an unnamed temporary file beside the decrypted MsgHead's (app/security/cms.py
    `new_spool`), gone when closed and closed when the last notification holding it is
    freed. From the check until the register store reads them they are some 65 MB for
    100 000 notifications, held while the store's own structures peak. A file that cannot be
    written fails the message like the MsgHead's spool would (stored, answered as an
    internal error), never silently."""

    IN_MEMORY = 1024 * 1024
    # the store reads the notifications in order, twice: a window at a time, not a read each
    WINDOW = 256 * 1024

    def __init__(self) -> None:
        self._held = 0
        self._file: IO[bytes] | None = None
        self._end = 0
        self._unflushed = False
        self._lock = threading.Lock()
        self._window = b""
        self._window_at = 0

    def add(self, packed: str) -> tuple[int, int] | None:
        """Keep `packed`: where it lies in the file (offset, length in bytes), or None while
        the spool is small (the caller keeps it)."""
        if self._held < self.IN_MEMORY:
            self._held += len(packed)
            return None
        data = packed.encode()
        with self._lock:
            if self._file is None:
                self._file = tempfile.TemporaryFile()  # noqa: SIM115 - freed with the values
            at = self._end
            self._file.write(data)
            self._end += len(data)
            self._unflushed = True
        return at, len(data)

    def read(self, at: int, length: int) -> str:
        with self._lock:
            assert self._file is not None  # only what `add` placed in the file is read here
            start = at - self._window_at
            if start < 0 or start + length > len(self._window):
                if self._unflushed:
                    self._file.flush()
                    self._unflushed = False
                self._window = os.pread(self._file.fileno(), max(length, self.WINDOW), at)
                self._window_at, start = at, 0
            return self._window[start : start + length].decode()


@dataclass(frozen=True, slots=True, eq=False)
class RawNotification:
    """A Notifikasjon's attributes and its events, exactly as sent, packed into one string:
    a 100 000-notification message kept 18 strings and 3 dicts per notification (+300 MB of
    peak memory) for the register store, which reads them once. The string is held here, or
    in a `RawSpool` (a streamed message)."""

    text: str | None
    spool: RawSpool | None = None
    at: int = 0
    length: int = 0

    @classmethod
    def of(
        cls,
        attrs: Mapping[str, str],
        events: Iterable[tuple[str, Mapping[str, str], Mapping[str, str]]],
        spool: RawSpool | None = None,
    ) -> RawNotification:
        """From the Notifikasjon's attributes and (kind, attributes, Bruker's) per event."""
        parts = [attrs.get(n, _ABSENT) for n in NOTIFIKASJON_FIELDS]
        for kind, event, bruker in events:
            parts.append(kind)
            parts += [event.get(n, _ABSENT) for n in EVENT_FIELDS]
            parts += [bruker.get(n, _ABSENT) for n in BRUKER_FIELDS]
        packed = _SEP.join(parts)
        where = spool.add(packed) if spool is not None else None
        if where is None:
            return cls(packed)
        return cls(None, spool, *where)

    @property
    def packed(self) -> str:
        if self.text is not None:
            return self.text
        assert self.spool is not None
        return self.spool.read(self.at, self.length)

    def __eq__(self, other: object) -> bool:
        # the values, wherever they are kept (the streamed and the tree path compare equal)
        return isinstance(other, RawNotification) and self.packed == other.packed

    def __hash__(self) -> int:
        return hash(self.packed)

    @property
    def attrs(self) -> dict[str, str]:
        return _fields(NOTIFIKASJON_FIELDS, self.packed.split(_SEP)[: len(NOTIFIKASJON_FIELDS)])

    def values(self) -> tuple[list[str | None], list[list[str | None]]]:
        """Every value in one split, None where not sent: the Notifikasjon's (in
        `NOTIFIKASJON_FIELDS` order) and per event its kind, then its attributes and its
        Bruker's (`EVENT_FIELDS`, `BRUKER_FIELDS`). The register store's bulk path: the
        mappings of `attrs` and `events` cost more than the rows they go into."""
        parts = [None if p == _ABSENT else p for p in self.packed.split(_SEP)]
        k = len(NOTIFIKASJON_FIELDS)
        return parts[:k], [parts[i : i + _PER_EVENT] for i in range(k, len(parts), _PER_EVENT)]

    def head(self) -> list[str | None]:
        """The Notifikasjon's values as `values` gives them, without splitting the events."""
        k = len(NOTIFIKASJON_FIELDS)
        return [None if p == _ABSENT else p for p in self.packed.split(_SEP, k)[:k]]

    @property
    def events(self) -> tuple[RawEvent, ...]:
        parts = self.packed.split(_SEP)[len(NOTIFIKASJON_FIELDS) :]
        out = []
        for i in range(0, len(parts), _PER_EVENT):
            ev = parts[i : i + _PER_EVENT]
            split = 1 + len(EVENT_FIELDS)
            out.append(
                RawEvent(
                    ev[0], _fields(EVENT_FIELDS, ev[1:split]), _fields(BRUKER_FIELDS, ev[split:])
                )
            )
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Notification:
    """One extracted notification (row). Values blanked by a WARN rule are None."""

    index: int  # 1-based position among the message's Notifikasjon elements
    guid: str  # normalized
    status: str  # N | M | C (another is kept with IPL-STATUS-CODE)
    lopenr: int | None
    forrige_guid: str  # normalized
    ref: str | None  # normalized notifikasjonRef
    events: tuple[ServiceEvent, ...]  # in document order; empty when none could be read
    kommune_nr: str
    bruker_nr: str
    fid: str  # personal data
    type_id: str  # the kind the number shows when it differs from the stated typeID
    bydel: str | None
    dropped: bool
    # SHA-256 over the Notifikasjon element's names and attribute values: an identical resend
    # of a stored notification is no error
    content_sha256: str = ""
    already_stored: bool = False  # identical to a stored notification: nothing to store
    raw: RawNotification | None = None  # the values as sent, for the register store
    rules: tuple[str, ...] = ()  # the ids of the rules the row's findings name
    # the ids of the errors the row is kept with (consequence KEEP_WITH_ERROR, issue 21)
    errors: tuple[str, ...] = ()
    # content_sha256 without notifikasjonTid, hendelseRegTid and pasientGUID: a resend that
    # differs only in those is the same notification (issue 21)
    content_core_sha256: str = ""

    @property
    def event(self) -> str:
        """The first event's element name ("" when there is none)."""
        return self.events[0].kind if self.events else ""

    @property
    def hendelse_dato(self) -> datetime.date | None:
        """The first event's date."""
        return self.events[0].hendelse_dato if self.events else None

    @property
    def identifies_person(self) -> bool:
        """The fid is a person's number (typeID 1, 2 or 3), not a typeID 9 birth date: only
        such a fid is kept as the brukerNr's person. Nor a number kept with IPL-FID-INVALID
        (issue 21): it identifies no one, and the correction brings the person's number."""
        return self.type_id in PERSON_ID_TYPES and "IPL-FID-INVALID" not in self.errors


@dataclass(frozen=True, slots=True)
class Contact:
    type: str  # kodeverk 8471; "17" = IPLOS innsendingsansvarlig
    name: str | None
    email1: str | None
    email2: str | None
    phone: str | None


@dataclass(frozen=True, slots=True)
class ContentResult:
    findings: tuple[Finding, ...]
    notifications: tuple[Notification, ...]
    contacts: tuple[Contact, ...]
    kommuner: tuple[str, ...]
    # the Melding's attributes and each Kontaktperson's, as sent (the register store)
    melding: Mapping[str, str] = field(default_factory=dict)
    raw_contacts: tuple[Mapping[str, str], ...] = ()

    @property
    def rejected(self) -> bool:
        return any(f.rule.consequence is Consequence.REJECT_MESSAGE for f in self.findings)

    @property
    def innsendingsansvarlig_emails(self) -> tuple[str, ...]:
        """E-mail addresses of the type 17 contacts (whom the notifier writes to)."""
        out: list[str] = []
        for c in self.contacts:
            if c.type == "17":
                out.extend(e for e in (c.email1, c.email2) if e and e not in out)
        return tuple(out)
