"""What identifies a notification for resends and history: its content digest and the
history keys (GUIDs, løpenummer, brukerNr) read without running the rules."""

from __future__ import annotations

import hashlib
from typing import cast

from lxml import etree

from app.content.iplos import service_start
from app.content.iplos.codes import _LOPENR, BRUKER, EVENTS, NOTIFIKASJON
from app.content.model import (
    HistoryKeys,
    guid_key,
    normalize_guid,
)


def attributes_of(el: etree._Element) -> dict[str, str]:
    """An element's attributes as sent (lxml gives str; its stubs say str or bytes)."""
    return dict(cast("list[tuple[str, str]]", el.items()))


def _attributes(el: etree._Element, tag: str, parts: list[str]) -> dict[str, str]:
    """An element's attributes; its share of the content digest appended to `parts`: `<` +
    its name, then `\\0name=value` per attribute sorted by name (GUIDs normalised). Stored
    digests are compared with new ones: these bytes must never change."""
    items = cast("list[tuple[str, str]]", el.items())  # lxml gives str (stubs: or bytes)
    if len(items) > 1:
        items.sort()  # names are unique within an element: sorted by name
    parts.append("<" + tag)
    parts.extend([f"\x00{n}={normalize_guid(v) if n in _GUID_ATTRS else v}" for n, v in items])
    return dict(items)


def _digest(parts: list[str]) -> str:
    # one string, hashed once: the same bytes as one update per part
    return hashlib.sha256("".join(parts).encode()).hexdigest()


_GUID_ATTRS = frozenset(
    {
        "notifikasjonGUID",
        "notifikasjonForrigeGUID",
        "notifikasjonRef",
        "hendelseGUID",
        "pasientGUID",
    }
)


class KeyReader:
    """Collects the GUIDs, brukerNr, fids and løpenummer a `Melding` mentions (the history
    rows its checks need), from the whole tree or piece by piece as a stream reads it."""

    __slots__ = ("_brukere", "_fids", "_guids", "_hendelser", "_lopenrs", "_services")

    def __init__(self) -> None:
        self._hendelser: set[str] = set()
        self._guids: set[str] = set()
        self._brukere: set[str] = set()
        self._fids: set[str] = set()
        self._lopenrs: set[int] = set()
        self._services: set[tuple[str, str]] = set()

    def notification(self, notif: etree._Element) -> None:
        """A Notifikasjon's own attributes."""
        if guid := notif.get("notifikasjonGUID"):
            self._guids.add(guid_key(guid))
        if ref := notif.get("notifikasjonRef"):
            self._guids.add(guid_key(ref))
        lopenr = notif.get("notifikasjonLopeNr") or ""
        if _LOPENR.fullmatch(lopenr):
            self._lopenrs.update((int(lopenr), int(lopenr) - 1))

    def bruker(self, bruker: etree._Element) -> None:
        if bruker_nr := bruker.get("brukerNr"):
            self._brukere.add(bruker_nr)
        if fid := bruker.get("fid"):
            self._fids.add(fid)

    def event(self, event: etree._Element) -> None:
        if guid := event.get("hendelseGUID"):
            self._hendelser.add(guid_key(guid))
        kind = EVENTS.get(event.tag, "")
        if service_start.needs_start(kind, event.get("tjenesteType") or ""):
            # the service's start is looked up by its person and tjenesteID (rare: retired codes)
            bruker = event.find(BRUKER)
            bruker_nr = bruker.get("brukerNr") if bruker is not None else None
            if bruker_nr and (tjeneste_id := event.get("tjenesteID")):
                self._services.add((bruker_nr, tjeneste_id))

    def read(self, el: etree._Element) -> None:
        """Every Notifikasjon, event and Bruker in `el`, itself included."""
        # one pass: the sets do not keep order
        for node in el.iter(NOTIFIKASJON, BRUKER, *EVENTS):
            if node.tag == BRUKER:
                self.bruker(node)
            elif node.tag == NOTIFIKASJON:
                self.notification(node)
            else:
                self.event(node)

    def keys(self) -> HistoryKeys:
        return HistoryKeys(
            frozenset(self._guids),
            frozenset(self._brukere),
            frozenset(self._fids),
            frozenset(self._lopenrs),
            frozenset(self._hendelser),
            frozenset(self._services),
        )


def history_keys(root: etree._Element) -> HistoryKeys:
    """The GUIDs, brukerNr and fids a `Melding` mentions: the history rows its checks need."""
    reader = KeyReader()
    reader.read(root)
    return reader.keys()
