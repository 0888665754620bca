"""Issue 21's cases that were tested only below the intake, now through the HTTP intake on
SQLite and PostgreSQL: a malformed hendelseGUID, notifikasjonForrigeGUID or notifikasjonRef
keeps its row with IPL-XSD-VALUE (item 1), and an empty fid in notifications 2 and 3 is one
AppRec Error that names both rows and where the full list is (item 6)."""

from __future__ import annotations

import re

import httpx
import pytest
from lxml import etree

from app.content.model import EMPTY_GUID
from app.dev.devpki import DevPki
from app.dev.sample import build_sample
from tests.integration.test_intake_history import NS, guid, melding, send
from tests.integration.test_intake_kept_rows import Sessions, error_list, kept_with, rows

MALFORMED = "ikke-en-guid"


def _with(content: bytes, attribute: str, value: str) -> bytes:
    """`content` with `attribute` of its last notification (or of that notification's first
    event, for an event's attribute) set to `value`."""
    root = etree.fromstring(content)
    last = root.findall(f"{NS}Notifikasjon")[-1]
    if attribute.startswith("notifikasjon"):
        last.set(attribute, value)
    else:
        event = next(e for e in last.iter() if e.get(attribute) is not None)
        event.set(attribute, value)
    return etree.tostring(root)


@pytest.mark.parametrize("attribute", ["hendelseGUID", "notifikasjonForrigeGUID"])
async def test_a_malformed_guid_keeps_its_row_with_the_error(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions, attribute: str
) -> None:
    content = _with(melding(1, 1, EMPTY_GUID, n=3), attribute, MALFORMED)
    answer = await send(intake, pki, sessions, content)
    ot = kept_with(answer, "IPL-XSD-VALUE")
    assert "/Melding/Notifikasjon[3]" in ot
    assert f"@{attribute}" in ot
    stored = await rows(sessions)
    assert len(stored) == 3
    assert stored[-1].feil == "IPL-XSD-VALUE"
    assert [n.feil for n in stored[:2]] == [None, None]
    listed = await error_list(intake, sessions)
    assert ("IPL-XSD-VALUE", guid(content)) in {
        (r["rule_id"], r["notification_guid"]) for r in listed
    }


async def test_a_malformed_notifikasjon_ref_keeps_the_correction_with_the_error(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions
) -> None:
    first = melding(1, 1, EMPTY_GUID, n=2)
    assert (await send(intake, pki, sessions, first)).status == "1"
    root = etree.fromstring(melding(2, 3, guid(first), n=1))
    (m,) = root.findall(f"{NS}Notifikasjon")
    m.set("statusNotifikasjon", "M")
    m.set("notifikasjonRef", MALFORMED)
    correction = etree.tostring(root)
    answer = await send(intake, pki, sessions, correction)
    ot = kept_with(answer, "IPL-XSD-VALUE")
    assert "@notifikasjonRef" in ot
    stored = await rows(sessions)
    assert len(stored) == 3
    assert (stored[-1].status_notifikasjon, stored[-1].feil) == ("M", "IPL-XSD-VALUE")
    assert stored[-1].notifikasjon_ref == MALFORMED  # the value as sent


async def test_an_empty_fid_in_notifications_2_and_3_is_one_error_naming_both(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions
) -> None:
    parts = build_sample(3, "0301", (), seed=8).split(b"<Notifikasjon ")
    for i in (2, 3):
        parts[i] = re.sub(rb' fid="[^"]*"', b' fid=""', parts[i], count=1)
    content = b"<Notifikasjon ".join(parts)
    answer = await send(intake, pki, sessions, content)
    assert "IPL-FID-MISSING" in answer.rules
    missing = [e for e in answer.apprec.errors if "IPL-FID-MISSING" in (e.ot or "")]
    assert len(missing) == 1
    ot = missing[0].ot or ""
    assert ot.startswith("IPL-FID-MISSING: fid er tom. Gjelder 2 notifikasjoner:")
    for position in (2, 3):
        assert f"Notifikasjon nr. {position} (notifikasjonGUID {guid(content, position - 1)}" in ot
    assert "Hele listen står i kommunens feilliste hos KPR" in ot
    listed = await error_list(intake, sessions)
    named = {r["notification_guid"] for r in listed if r["rule_id"] == "IPL-FID-MISSING"}
    assert named == {guid(content, 1), guid(content, 2)}
