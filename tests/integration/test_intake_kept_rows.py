"""Issue 21 items 1-3 through the HTTP intake, on SQLite and PostgreSQL: a notification the
Annotations do not let KPR refuse ("Ingen handling") is kept, stored in the register store
with its finding beside it, reported as an error (AppRec 3) and listed in the error list; the
Melding's moduleConstraint I attributes are ignored; codes written with a leading zero and
identifiers of another kind than typeID says are read as what they are."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from lxml import etree
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.content.model import EMPTY_GUID, guid_key
from app.dev.devpki import DevPki
from app.dev.sample import build_sample
from app.register.models import Episode, Hendelse, Notifikasjon
from tests.integration.seed import auth, token
from tests.integration.test_intake_history import NS, Answer, guid, melding, send

Sessions = async_sessionmaker[AsyncSession]
FEILLISTE = "/api/v1/kommuner/0301/feilliste"
FEED = "/api/v1/register/notifications"


async def rows(sessions: Sessions) -> list[Notifikasjon]:
    async with sessions() as s:
        return list(await s.scalars(select(Notifikasjon).order_by(Notifikasjon.id)))


async def events(sessions: Sessions) -> list[Hendelse]:
    async with sessions() as s:
        return list(await s.scalars(select(Hendelse).order_by(Hendelse.id)))


async def error_list(kpr: httpx.AsyncClient, sessions: Sessions) -> list[dict[str, Any]]:
    oslo = auth(await token(sessions, f"oslo-{uuid.uuid4().hex[:6]}", "municipality:0301"))
    r = await kpr.get(FEILLISTE, headers=oslo, params={"environment": "pilot", "filter": "all"})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["rows"]
    return found


def kept_with(answer: Answer, rule_id: str) -> str:
    """The AppRec says status 3 and names the row as stored with its error."""
    assert answer.status == "3", answer.ots
    assert rule_id in answer.rules
    (ot,) = [ot for ot in answer.ots if rule_id in ot]
    assert "er lagret, men har feil" in ot
    assert "korreksjon (status M)" in ot
    return ot


# --- item 1: rows with handling 9 are kept with their error --------------------------------


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("IPL-FID-INVALID", "E31"),
        ("IPL-FID-DATE", "E31"),
        ("IPL-TJENESTETYPE-CODE", "T99"),
        ("IPL-ORGNR-REQUIRED", "T99"),
        ("IPL-STATUS-CODE", "T99"),
        ("IPL-REF-MISSING", "X99"),
        ("IPL-EVENT-COUNT", "T99"),
    ],
)
async def test_a_row_with_handling_9_is_stored_with_its_error(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions, fault: str, code: str
) -> None:
    content = melding(1, 1, EMPTY_GUID, n=3, faults=(fault,))
    answer = await send(intake, pki, sessions, content)
    kept_with(answer, fault)
    assert [e.code for e in answer.apprec.errors] == [code]
    stored = await rows(sessions)
    assert [n.notifikasjon_guid_tolket for n in stored] == [guid(content, i) for i in range(3)]
    assert [n.feil for n in stored] == [None, None, fault]
    assert fault in (stored[-1].funn or "")
    listed = await error_list(intake, sessions)
    assert [(r["rule_id"], r["notification_guid"], r["corrected"]) for r in listed] == [
        (fault, guid(content), False)
    ]


async def test_an_invalid_provider_keeps_the_start_beside_it(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions
) -> None:
    content = melding(1, 1, EMPTY_GUID, n=3, faults=("two-events",))
    content = content.replace(b"<TjenesteSlutt ", b'<TjenesteutforerEndret tjenesteOrgNr="123" ')
    content = content.replace(b"</TjenesteSlutt>", b"</TjenesteutforerEndret>")
    answer = await send(intake, pki, sessions, content)
    kept_with(answer, "IPL-ORGNR-REQUIRED")
    last = (await rows(sessions))[-1]
    kinds = [(e.hendelse_type, e.tjeneste_org_nr) for e in await events(sessions)]
    assert kinds[-2:] == [("TjenesteStart", kinds[-2][1]), ("TjenesteutforerEndret", "123")]
    assert last.feil == "IPL-ORGNR-REQUIRED"
    async with sessions() as s:
        episode = (
            await s.scalars(select(Episode).where(Episode.start_notifikasjon_guid == guid(content)))
        ).one()
    assert episode.start_dato is not None


async def test_a_kept_row_corrected_by_an_m_is_corrected_in_the_error_list(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions
) -> None:
    bad = melding(1, 1, EMPTY_GUID, n=3, faults=("IPL-FID-INVALID",))
    kept_with(await send(intake, pki, sessions, bad), "IPL-FID-INVALID")
    # the same GUID again with other content is no correction (IPL-GUID-KNOWN) ...
    fixed = melding(1, 1, EMPTY_GUID, n=3)
    again = await send(intake, pki, sessions, fixed)
    assert again.rules == {"IPL-GUID-KNOWN"}
    # ... an M with its own GUID naming the stored row is
    root = etree.fromstring(fixed)
    *earlier, m = root.findall(f"{NS}Notifikasjon")
    for element in earlier:
        root.remove(element)
    m.set("statusNotifikasjon", "M")
    m.set("notifikasjonGUID", str(uuid.uuid4()))
    m.set("notifikasjonRef", guid(bad))
    m.set("notifikasjonLopeNr", "4")
    m.set("notifikasjonForrigeGUID", guid(bad))
    correction = await send(intake, pki, sessions, etree.tostring(root))
    # its event is the stored one's (same hendelseGUID: counted once); the invalid number was
    # never taken as the brukerNr's person, so no IPL-BRUKERNR-STABLE
    assert (correction.status, correction.rules) == ("1", {"IPL-HENDELSE-GUID-KNOWN"})
    listed = await error_list(intake, sessions)
    fid_rows = [r for r in listed if r["rule_id"] == "IPL-FID-INVALID"]
    assert [(r["notification_guid"], r["corrected"]) for r in fid_rows] == [(guid(bad), True)]


async def test_an_annulment_without_an_event_annuls_its_original(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions
) -> None:
    first = melding(1, 1, EMPTY_GUID, n=2)
    assert (await send(intake, pki, sessions, first)).status == "1"
    root = etree.fromstring(melding(2, 3, guid(first), n=1))
    (c,) = root.findall(f"{NS}Notifikasjon")
    for child in list(c):
        c.remove(child)
    c.set("statusNotifikasjon", "C")
    c.set("notifikasjonRef", guid(first, 0))
    answer = await send(intake, pki, sessions, etree.tostring(root))
    kept_with(answer, "IPL-EVENT-COUNT")
    stored = await rows(sessions)
    assert (stored[-1].status_notifikasjon, stored[-1].notifikasjon_ref_tolket) == (
        "C",
        guid(first, 0),
    )
    async with sessions() as s:
        starts = set(await s.scalars(select(Episode.start_notifikasjon_guid)))
    assert guid(first, 0) not in starts  # annulled
    assert guid(first, 1) in starts


async def test_a_guid_without_hyphens_is_kept_under_its_key_everywhere(
    environments: httpx.AsyncClient, pki: DevPki, sessions: Sessions
) -> None:
    kpr = environments
    content = build_sample(3, "0301", ("IPL-XSD-VALUE",), seed=21)
    sent = guid(content)
    assert "-" not in sent
    key = guid_key(sent)
    answer = await send(kpr, pki, sessions, content)
    ot = kept_with(answer, "IPL-XSD-VALUE")
    assert f"notifikasjonGUID {key}" in ot
    assert "/Melding/Notifikasjon[3]/@notifikasjonGUID" in ot
    assert [e.code for e in answer.apprec.errors] == ["T02"]
    # the register store: the value as sent, the key beside it
    last = (await rows(sessions))[-1]
    assert (last.notifikasjon_guid, last.notifikasjon_guid_tolket) == (sent, key)
    assert last.feil == "IPL-XSD-VALUE"
    # the episodes name the row by its key
    async with sessions() as s:
        starts = set(await s.scalars(select(Episode.start_notifikasjon_guid)))
    assert key in starts
    # the feed carries it
    loader = auth(await token(sessions, "kpr-loader", "register"))
    page = (await kpr.get(FEED, headers=loader, params={"environment": "pilot"})).json()
    (item,) = [i for i in page["items"] if i["notifikasjon_guid"] == sent]
    assert (item["notifikasjon_guid_tolket"], item["feil"]) == (key, "IPL-XSD-VALUE")
    # the error list
    listed = await error_list(kpr, sessions)
    assert [(r["rule_id"], r["notification_guid"]) for r in listed] == [("IPL-XSD-VALUE", key)]
    # the history: the same message again is an identical resend, stored once
    again = await send(kpr, pki, sessions, content)
    assert "IPL-GUID-KNOWN" not in again.rules
    assert len([n for n in await rows(sessions) if n.notifikasjon_guid == sent]) == 1


# --- item 2: the Melding's moduleConstraint I attributes are ignored -----------------------


@pytest.mark.parametrize("attribute", ["uttakDato", "fraDatoPeriode", "tilDatoPeriode"])
async def test_an_attribute_the_module_does_not_use_is_ignored(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions, attribute: str
) -> None:
    content = melding(1, 1, EMPTY_GUID, n=2).replace(
        b' lokalident="', f' {attribute}="2018-01-01" lokalident="'.encode(), 1
    )
    answer = await send(intake, pki, sessions, content)
    assert (answer.status, answer.ots) == ("1", [])
    assert answer.rules == {"IPL-XSD-IGNORED"}
    assert len(await rows(sessions)) == 2


# --- item 3: leading zeros and identifiers of another kind --------------------------------


async def test_a_service_type_with_a_leading_zero_is_kept_as_sent_and_read_as_8(
    intake: httpx.AsyncClient, pki: DevPki, sessions: Sessions
) -> None:
    content = melding(1, 1, EMPTY_GUID, n=3, faults=("IPL-CODE-LEADING-ZERO",))
    assert b'tjenesteType="08"' in content
    answer = await send(intake, pki, sessions, content)
    assert (answer.status, answer.rules) == ("1", {"IPL-CODE-LEADING-ZERO"})
    last = (await events(sessions))[-1]
    assert (last.tjeneste_type, last.tjeneste_type_tolket) == ("08", "8")
    async with sessions() as s:
        episode = (
            await s.scalars(select(Episode).where(Episode.start_notifikasjon_guid == guid(content)))
        ).one()
    assert episode.tjeneste_type == "8"


@pytest.mark.parametrize(
    ("scenario", "rule", "sent", "read"),
    [
        ("typeid-leading-zero", "IPL-CODE-LEADING-ZERO", "01", "1"),
        ("fnr-as-typeid-9", "IPL-TYPEID-KIND", "9", "1"),
        ("birthdate-as-typeid-1", "IPL-TYPEID-KIND", "1", "9"),
    ],
)
async def test_an_identifier_is_stored_as_the_kind_it_is(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: Sessions,
    scenario: str,
    rule: str,
    sent: str,
    read: str,
) -> None:
    content = melding(1, 1, EMPTY_GUID, n=3, faults=(scenario,))
    answer = await send(intake, pki, sessions, content)
    assert (answer.status, answer.rules, answer.ots) == ("1", {rule}, [])
    assert len(await rows(sessions)) == 3
    last = (await events(sessions))[-1]
    assert (last.type_id, last.type_id_tolket) == (sent, read)
