"""The intake's look-up of senders in NHN's registries.

- `registered_sender`: a party from the registries whose entry is past its cache time is
  refreshed (an outage keeps its last good entry); a HER-id the party table does not hold is
  looked up (AR party, its
  certificates, the CPA for the pair or the CPP), checked, cached and registered (source
  `ar`). Unknown HER-ids are cached as unknown for the cache time (a stranger cannot make the
  service call the registry at will); an outage gives a temporary failure.
- `refreshed_sender`: a registered sender whose certificate failed to verify is refreshed at
  most once per HER-id per 10 minutes; an outage leaves the last good entry.
Look-ups run under a small concurrency limit and an overall deadline."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.findings import Finding
from app.ebxml import rules as ebxml_rules
from app.models import Party, RegistryEntry
from app.outbound import OutboundClient
from app.platform.logs import get_logger
from app.platform.metrics import Metrics
from app.platform.settings import Settings
from app.registries.ar_rest import ClientCredentials, RestAddressRegistry, TokenSource
from app.registries.ar_soap import SoapAddressRegistry
from app.registries.contract import AddressRegistry, AgreementRegistry
from app.registries.cppa_rest import RestAgreementRegistry
from app.registries.http import Caller
from app.registries.models import RegistryAnswerInvalid, RegistryParty, RegistryUnavailable
from app.registries.sync import Stored, checked_spec, store, year_kommuner

if TYPE_CHECKING:
    from app.state import AppState

log = get_logger(__name__)

FORCED_REFRESH_INTERVAL = dt.timedelta(minutes=10)


@dataclass
class Registries:
    ar: AddressRegistry
    cppa: AgreementRegistry | None
    anchors: tuple[x509.Certificate, ...]
    cache_seconds: int
    deadline: float  # the whole look-up, waiting for a slot included
    slots: asyncio.Semaphore
    metrics: Metrics | None = None

    async def fetch(self, her_id: int, our_her_id: int | None) -> RegistryParty | None:
        """Everything the registries say about `her_id`; None when the AR does not know it."""
        try:
            async with asyncio.timeout(self.deadline):
                async with self.slots:
                    return await self._fetch(her_id, our_her_id)
        except TimeoutError:
            raise RegistryUnavailable(f"no answer within {self.deadline:g} s") from None

    async def _fetch(self, her_id: int, our_her_id: int | None) -> RegistryParty | None:
        party = await self.ar.party(her_id)
        if party is None:
            return None
        signing, encryption = await asyncio.gather(
            self.ar.certificate(her_id, "signing"), self.ar.certificate(her_id, "encryption")
        )
        agreement = None
        if self.cppa is not None and our_her_id is not None:
            agreement = await self.cppa.agreement(our_her_id, her_id)
        return RegistryParty(party, signing, encryption, agreement)

    async def refresh(
        self,
        session: AsyncSession,
        her_id: int,
        our_her_id: int | None,
        *,
        adopt: bool = False,
    ) -> Stored:
        """Fetch, check and store one HER-id. Raises RegistryUnavailable (nothing stored)."""
        now = dt.datetime.now(dt.UTC)
        fetched = await self.fetch(her_id, our_her_id)
        spec, problem = None, None
        if fetched is not None:
            try:
                kommuner = await year_kommuner(session, now.year)
                spec = checked_spec(fetched, self.anchors, kommuner, now)
            except RegistryAnswerInvalid as exc:
                problem = str(exc)
                log.warning("registry answer refused", extra={"her_id": her_id, "why": problem})
        stored = await store(
            session,
            her_id,
            fetched,
            spec,
            problem=problem,
            now=now,
            cache_seconds=self.cache_seconds,
            adopt=adopt,
        )
        log.info("registry refresh", extra={"her_id": her_id, "change": stored.change})
        return stored

    def count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.registry_lookups.labels(result).inc()


def _basic(path: Path | None) -> tuple[str, str] | None:
    if path is None:
        return None
    user, sep, password = path.read_text("utf-8").strip().partition(":")
    if not sep or not user:
        raise ValueError("KPR_AR_CREDENTIALS_FILE: expected one line username:password")
    return user, password


def _token_source(caller: Caller, path: Path | None) -> TokenSource:
    if path is None:
        raise ValueError("KPR_AR_KIND=rest needs KPR_AR_CREDENTIALS_FILE (HelseID client)")
    data = json.loads(path.read_text("utf-8"))
    try:
        return ClientCredentials(
            Caller(caller.client, "helseid", caller.deadline, 256 * 1024, caller.metrics),
            str(data["token_url"]),
            str(data["client_id"]),
            str(data["client_secret"]),
            str(data.get("scope", "")),
        )
    except KeyError as exc:
        raise ValueError(f"KPR_AR_CREDENTIALS_FILE: {exc.args[0]} is missing") from None


def build(
    settings: Settings,
    client: OutboundClient,
    anchors: tuple[x509.Certificate, ...],
    metrics: Metrics | None = None,
    tokens: TokenSource | None = None,
) -> Registries | None:
    """The registries the settings name; None when KPR_AR_URL is unset (offline)."""
    if settings.ar_url is None:
        return None
    limits = (settings.registry_timeout_seconds, settings.registry_max_bytes, metrics)
    ar: AddressRegistry
    if settings.ar_kind == "soap":
        caller = Caller(client, "ar-soap", *limits)
        ar = SoapAddressRegistry(caller, settings.ar_url, _basic(settings.ar_credentials_file))
    else:
        caller = Caller(client, "ar-rest", *limits)
        source = tokens or _token_source(caller, settings.ar_credentials_file)
        ar = RestAddressRegistry(caller, settings.ar_url, source)
    cppa = None
    if settings.cppa_url is not None:
        cppa = RestAgreementRegistry(Caller(client, "cppa", *limits), settings.cppa_url)
    return Registries(
        ar=ar,
        cppa=cppa,
        anchors=anchors,
        cache_seconds=settings.registry_cache_seconds,
        deadline=settings.registry_timeout_seconds * 2,
        slots=asyncio.Semaphore(settings.registry_concurrency),
        metrics=metrics,
    )


def for_state(state: AppState) -> Registries | None:
    """The app's registries, built on first use (None: offline, or before the lifespan).
    Unreadable credentials are an outage (RegistryUnavailable), logged, not a crash."""
    if isinstance(state.registries, Registries):
        return state.registries
    if state.outbound is None:
        return None
    try:
        state.registries = build(
            state.settings, state.outbound, state.keyring.trust_anchors, state.metrics
        )
    except (ValueError, OSError) as exc:
        log.error("registry misconfigured", extra={"why": str(exc)[:200]})
        raise RegistryUnavailable("the registries are misconfigured") from None
    return state.registries if isinstance(state.registries, Registries) else None


@dataclass(frozen=True, slots=True)
class Sender:
    party: Party | None  # registered now (from the registries) or None
    finding: Finding | None = None  # a temporary failure: the registries could not be asked


def _her(text: str | int | None) -> int | None:
    value = str(text or "").strip()
    return int(value) if value.isascii() and value.isdigit() and 0 < len(value) < 19 else None


async def registered_sender(
    state: AppState,
    session: AsyncSession,
    her_id: int | None,
    party: Party | None,
    our_her_id: str | int | None,
) -> Sender:
    """The sender for the intake, from `party` (the party table's row for `her_id`, or None):
    - a party an operator added (manual, import): as it is, the registries are not asked;
    - a party from the registries (source ar): as it is while its entry is fresh and a
      signing certificate is valid, else refreshed; an outage keeps the last good entry;
    - no party: looked up (unknown HER-ids are cached as unknown); an outage, or
      misconfigured registries, is a temporary failure (`finding`)."""
    if her_id is None or (party is not None and party.source != "ar"):
        return Sender(party)
    outage = None if party is not None else _unavailable(her_id)
    try:
        regs = for_state(state)
    except RegistryUnavailable:
        return Sender(party, outage)
    if regs is None:
        return Sender(party)
    now = dt.datetime.now(dt.UTC)
    entry = await session.get(RegistryEntry, her_id)
    if entry is not None and entry.expires_at > now:
        if party is None and not entry.known:
            regs.count("negative")
            return Sender(None)
        if party is not None and _signing_valid(party, now):
            regs.count("cached")
            return Sender(party)
    try:
        stored = await regs.refresh(session, her_id, _her(our_her_id))
    except RegistryUnavailable as exc:
        regs.count("unavailable")
        log.warning("registry unavailable", extra={"her_id": her_id, "why": str(exc)})
        if entry is not None and party is not None:  # not asked again for each message
            entry.expires_at = now + dt.timedelta(seconds=min(regs.cache_seconds, 300))
        return Sender(party, outage)  # a known sender: its last good entry
    regs.count(stored.change)
    return Sender(stored.party)


def _signing_valid(party: Party, now: dt.datetime) -> bool:
    return any(
        c.usage == "signing" and c.not_before <= now <= c.not_after for c in party.certificates
    )


async def refreshed_sender(
    state: AppState, session: AsyncSession, her_id: int, our_her_id: str | int | None
) -> Party | None:
    """A registered sender's certificate failed to verify: refresh it from the registries
    (at most once per HER-id per 10 minutes). The party when the refresh changed it, else
    None (nothing new, limited, an operator's party, or the registries unavailable)."""
    try:
        regs = for_state(state)
    except RegistryUnavailable:
        return None
    if regs is None:
        return None
    now = dt.datetime.now(dt.UTC)
    entry = await session.get(RegistryEntry, her_id)
    forced_at = entry.forced_at if entry is not None else None
    if forced_at is not None and now - forced_at < FORCED_REFRESH_INTERVAL:
        regs.count("limited")
        return None
    if entry is None:
        entry = RegistryEntry(her_id=her_id, known=False, fetched_at=now, expires_at=now)
        session.add(entry)
    entry.forced_at = now
    await session.flush()
    try:
        stored = await regs.refresh(session, her_id, _her(our_her_id))
    except RegistryUnavailable as exc:
        regs.count("unavailable")
        log.warning("registry unavailable", extra={"her_id": her_id, "why": str(exc)})
        return None
    regs.count(f"forced-{stored.change}")
    return stored.party if stored.change in ("added", "updated") else None


def _unavailable(her_id: int) -> Finding:
    return Finding(
        ebxml_rules.REGISTRY_UNAVAILABLE,
        "eb:MessageHeader/eb:From/eb:PartyId",
        f"Avsender HER-id {her_id} kunne ikke slås opp i adresseregisteret nå. Send "
        "meldingen på nytt senere.",
    )
