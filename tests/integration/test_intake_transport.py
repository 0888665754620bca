"""The transport rules of POST /ebms, one message per rule that breaks only that rule.

Each broken message gets an eb:MessageError naming the rule, and is stored: the raw request,
its sha256, the finding and the exact reply bytes. Runs on SQLite; the values that do not fit
their columns also on PostgreSQL, which enforces the widths.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from lxml import etree
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import undefer

from app.apprec.parse import parse_apprec
from app.content.model import EMPTY_GUID
from app.dev import devsetup
from app.dev.client import PKCS7, SendOptions, prepare_payload, read_reply
from app.dev.devpki import DevPki, write_dev_pki
from app.dev.sample import build_sample, wrap_in_msghead
from app.ebxml import build as ebuild
from app.ebxml.envelope import EB_NS, SOAP_NS, XLINK_NS, EbmsError, Service
from app.intake.stages import envelope_signer
from app.main import create_app
from app.models import Finding, Message, Receipt
from app.parties import repository as party_repo
from app.parties.spec import CpaSpec
from app.platform.settings import Env, Settings
from tests.integration.messages import DEMO_HER, epj_message, msghead, post, reply_of
from tests.protector import PROTECTOR

# the transport rules: no SQL that differs (the column widths below run on both)
pytestmark = pytest.mark.databases("sqlite")

Edit = Callable[[etree._Element], None]


# --- helpers ---------------------------------------------------------------------------------


def message_error(response: httpx.Response) -> tuple[EbmsError, ...]:
    """The eb:Error list of a MessageError reply (HTTP 200, a parseable ebXML signal)."""
    assert response.status_code == 200, response.text[:500]
    reply = read_reply(response.content, response.headers["content-type"])
    assert reply.findings == ()
    assert reply.header is not None
    assert reply.header.action == "MessageError"
    assert reply.header.service.value == "urn:oasis:names:tc:ebxml-msg:service"
    return reply.header.errors


def assert_single_error(
    response: httpx.Response, rule_id: str, error_code: str, severity: str = "Error"
) -> EbmsError:
    errors = message_error(response)
    assert [e.error_code for e in errors] == [error_code], errors
    error = errors[0]
    assert error.severity == severity
    assert error.description is not None
    assert f"[{rule_id}]" in error.description
    assert error.location
    return error


async def stored_message(
    sessions: async_sessionmaker[AsyncSession], sent: bytes
) -> tuple[Message, list[Finding], list[Receipt]]:
    """The one message stored for the request body `sent`, its findings and receipts."""
    digest = hashlib.sha256(sent).hexdigest()
    async with sessions() as s:
        message = (
            await s.scalars(
                select(Message).where(Message.sha256 == digest).options(undefer(Message.raw))
            )
        ).one()
        findings = list(await s.scalars(select(Finding).where(Finding.message_id == message.id)))
        receipts = list(
            await s.scalars(
                select(Receipt)
                .where(Receipt.message_id == message.id)
                .options(undefer(Receipt.body))
            )
        )
    return message, findings, receipts


RAW_PREFIX = 4096  # what is kept of a request whose sender is not authenticated


async def assert_stored_error(
    sessions: async_sessionmaker[AsyncSession],
    response: httpx.Response,
    rule_id: str,
    *,
    authenticated: bool = False,
) -> Message:
    """The request is stored with its findings and reply: all of it once the sender is
    authenticated, otherwise only its first bytes."""
    sent = response.request.content
    message, findings, receipts = await stored_message(sessions, sent)
    assert message.status == "MESSAGE_ERROR"
    if authenticated or len(sent) <= RAW_PREFIX:
        assert message.raw == sent
        assert message.raw_ref is None
    else:
        assert message.raw == sent[:RAW_PREFIX]
        assert message.raw_ref == f"first {RAW_PREFIX} of {len(sent)} bytes: not authenticated"
    assert message.sha256 == hashlib.sha256(sent).hexdigest()
    assert message.size_bytes == len(sent)
    assert message.completed_at is not None
    assert [f.rule_id for f in findings] == [rule_id]
    assert len(receipts) == 1
    assert receipts[0].kind == "message_error"
    assert receipts[0].body == response.content
    assert receipts[0].content_type == response.headers["content-type"]
    return message


def edited_message(
    pki: DevPki, edit: Edit, head: bytes | None = None, **options: object
) -> ebuild.BuiltMessage:
    """Like `epj_message`, with the envelope edited by `edit` right before it is signed: the
    signature covers the edited envelope, so only the edit is wrong with the message."""
    opts = replace(SendOptions(from_her=DEMO_HER), **options)  # type: ignore[arg-type]
    payload = prepare_payload(
        head if head is not None else msghead(),
        signing=pki.municipality.signing,
        encrypt_to=pki.kpr.encryption.certificate,
    )
    assert payload.content_type == PKCS7
    sign = envelope_signer(pki.municipality.signing)
    assert sign is not None

    def edit_then_sign(root: etree._Element, attachments: Mapping[str, bytes]) -> etree._Element:
        edit(root)
        return sign(root, attachments)

    return ebuild.build_message(
        from_party=ebuild.her_party(opts.from_her, "Kommune"),
        to_party=ebuild.her_party(opts.to_her, "KPR"),
        cpa_id=opts.cpa_id,
        conversation_id=str(uuid.uuid4()),
        service=Service(opts.service, "string"),
        action=opts.action,
        message_id=f"{uuid.uuid4()}@epj.example",
        timestamp=datetime.now(UTC),
        payload=payload,
        time_to_live=opts.time_to_live,
        ref_to_message_id=opts.ref_to_message_id,
        soap_cte=opts.soap_cte,
        sign=edit_then_sign,
    )


async def post_raw(
    client: httpx.AsyncClient, body: bytes, content_type: str | None
) -> httpx.Response:
    headers = {"SOAPAction": '"ebXML"'}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await client.post("/ebms", content=body, headers=headers)


def assert_accepted(pki: DevPki, response: httpx.Response) -> None:
    assert response.status_code == 200
    reply = reply_of(pki, response)
    assert reply.header is not None
    assert reply.header.action == "APPREC", reply.header.errors
    assert reply.header.acknowledgment is not None
    assert reply.apprec is not None
    apprec = parse_apprec(reply.apprec)
    assert apprec.status == "1", apprec.errors


def chained_heads(count: int, notifications: int = 2) -> list[bytes]:
    """MsgHeads for `count` consecutive messages from the demo municipality whose
    notifications continue each other (løpenummer and forrige GUID), so each is accepted."""
    heads: list[bytes] = []
    previous = EMPTY_GUID
    for n in range(count):
        melding = build_sample(
            notifications,
            "0301",
            seed=n,
            start_lopenr=1 + n * notifications,
            previous_guid=previous,
        )
        last = etree.fromstring(melding).findall("{*}Notifikasjon")[-1].get("notifikasjonGUID")
        assert last is not None
        previous = last
        heads.append(
            wrap_in_msghead(
                melding,
                int(DEMO_HER),
                131725,
                str(uuid.uuid4()),
                datetime.now(UTC).replace(microsecond=0),
            )
        )
    return heads


async def register_demo_with_cpa(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], cpa: CpaSpec
) -> None:
    spec = replace(devsetup.demo_party(settings.pki_dir), cpas=(cpa,))
    async with sessions() as s:
        await party_repo.upsert_party(s, spec)
        await s.commit()


# --- To, From, CPA, Service/Action -----------------------------------------------------------


async def test_to_party_not_ours_is_value_not_recognized(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    built = epj_message(pki, msghead(receiver_her=999001), to_her="999001")
    r = await post(intake, built)
    error = assert_single_error(r, "EBMS-TO-UNKNOWN", "ValueNotRecognized")
    assert "eb:To/eb:PartyId" in (error.location or "")
    message = await assert_stored_error(sessions, r, "EBMS-TO-UNKNOWN")
    assert message.to_party_id == "999001"
    assert message.ebms_message_id == built.message_id


async def test_unregistered_sender_is_value_not_recognized(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    built = epj_message(pki, msghead(sender_her=8000099), from_her="8000099")
    r = await post(intake, built)
    # Before authentication the answer is the generic one (no registered-HER-id oracle);
    # the reason is stored for the operator.
    error = assert_single_error(r, "EBMS-NOT-AUTHENTICATED", "SecurityFailure")
    assert "8000099" not in (error.description or "")
    message = await assert_stored_error(sessions, r, "EBMS-FROM-UNKNOWN")
    assert message.from_party_id == "8000099"
    assert message.sender_party_id is None


async def test_cpa_id_not_the_partys_is_value_not_recognized(
    intake: httpx.AsyncClient,
    pki: DevPki,
    settings_with_pki: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await register_demo_with_cpa(settings_with_pki, sessions, CpaSpec("cpa-demo-kpr"))
    r = await post(intake, epj_message(pki, cpa_id="cpa-someone-else"))
    error = assert_single_error(r, "EBMS-CPA-UNKNOWN", "ValueNotRecognized")
    assert error.location is not None
    assert error.location.endswith("eb:CPAId")
    assert "cpa-demo-kpr" not in (error.description or "")  # never the party's CPA ids
    message = await assert_stored_error(sessions, r, "EBMS-CPA-UNKNOWN", authenticated=True)
    assert message.cpa_id == "cpa-someone-else"


async def test_the_partys_cpa_id_is_accepted(
    intake: httpx.AsyncClient,
    pki: DevPki,
    settings_with_pki: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await register_demo_with_cpa(
        settings_with_pki, sessions, CpaSpec("cpa-demo-kpr", (("KPR_IPL", "KPR_IPL"),))
    )
    r = await post(intake, epj_message(pki, cpa_id="cpa-demo-kpr"))
    assert_accepted(pki, r)


async def test_party_without_cpa_accepts_any_cpa_id_and_records_it(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    r = await post(intake, epj_message(pki, cpa_id="any-cpa-the-epj-likes"))
    assert_accepted(pki, r)
    message, _, _ = await stored_message(sessions, r.request.content)
    assert message.status == "OK"
    assert message.cpa_id == "any-cpa-the-epj-likes"


async def test_service_action_not_in_cpa_is_value_not_recognized(
    intake: httpx.AsyncClient,
    pki: DevPki,
    settings_with_pki: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await register_demo_with_cpa(
        settings_with_pki, sessions, CpaSpec("cpa-demo-kpr", (("KPR_IPL", "KPR_IPL"),))
    )
    r = await post(intake, epj_message(pki, cpa_id="cpa-demo-kpr", service="KPR_ANNET"))
    error = assert_single_error(r, "EBMS-SERVICE-NOT-ALLOWED", "ValueNotRecognized")
    assert "KPR_ANNET" in (error.description or "")
    message = await assert_stored_error(sessions, r, "EBMS-SERVICE-NOT-ALLOWED", authenticated=True)
    assert message.service == "KPR_ANNET"


# --- TimeToLive, Manifest, RefToMessageId ----------------------------------------------------


async def test_expired_time_to_live_is_time_to_live_expired(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ttl = datetime.now(UTC) - timedelta(minutes=5)
    r = await post(intake, epj_message(pki, time_to_live=ttl))
    error = assert_single_error(r, "EBMS-TTL-EXPIRED", "TimeToLiveExpired")
    assert "eb:TimeToLive" in (error.location or "")
    await assert_stored_error(sessions, r, "EBMS-TTL-EXPIRED")


async def test_future_time_to_live_is_accepted(intake: httpx.AsyncClient, pki: DevPki) -> None:
    ttl = datetime.now(UTC) + timedelta(hours=1)
    assert_accepted(pki, await post(intake, epj_message(pki, time_to_live=ttl)))


def _add_manifest_reference(href: str) -> Edit:
    def edit(root: etree._Element) -> None:
        manifest = root.find(f"{{{SOAP_NS}}}Body/{{{EB_NS}}}Manifest")
        assert manifest is not None
        ref = etree.SubElement(manifest, f"{{{EB_NS}}}Reference")
        ref.set(f"{{{XLINK_NS}}}href", href)
        ref.set(f"{{{XLINK_NS}}}type", "simple")

    return edit


async def test_manifest_reference_to_missing_part_is_mime_problem(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # The payload part stays referenced; a second reference names a part that is not there.
    built = edited_message(pki, _add_manifest_reference("cid:vedlegg-som-mangler@epj.example"))
    r = await post(intake, built)
    error = assert_single_error(r, "EBMS-MANIFEST-CID-UNRESOLVED", "MimeProblem")
    assert "eb:Reference[2]" in (error.location or "")
    assert "vedlegg-som-mangler@epj.example" in (error.description or "")
    await assert_stored_error(sessions, r, "EBMS-MANIFEST-CID-UNRESOLVED")


async def test_ref_to_unknown_message_is_value_not_recognized(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    r = await post(intake, epj_message(pki, ref_to_message_id="aldri-sendt@epj.example"))
    error = assert_single_error(r, "EBMS-REFTO-UNKNOWN", "ValueNotRecognized")
    assert "eb:RefToMessageId" in (error.location or "")
    message = await assert_stored_error(sessions, r, "EBMS-REFTO-UNKNOWN", authenticated=True)
    assert message.ref_to_message_id == "aldri-sendt@epj.example"


async def test_ref_to_known_message_is_accepted(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    one, two = chained_heads(2)
    first = epj_message(pki, one)
    assert_accepted(pki, await post(intake, first))
    r = await post(intake, epj_message(pki, two, ref_to_message_id=first.message_id))
    assert_accepted(pki, r)
    message, _, _ = await stored_message(sessions, r.request.content)
    assert message.ref_to_message_id == first.message_id


async def test_ref_to_our_own_reply_is_accepted(intake: httpx.AsyncClient, pki: DevPki) -> None:
    one, two = chained_heads(2)
    first = await post(intake, epj_message(pki, one))
    header = reply_of(pki, first).header
    assert header is not None
    r = await post(intake, epj_message(pki, two, ref_to_message_id=header.message_id))
    assert_accepted(pki, r)


# --- garbage: never a 500, always a MessageError and an audit record -------------------------

_SOAP_WITHOUT_EBMS = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<SOAP:Header/><SOAP:Body/></SOAP:Envelope>"
)
_SOAP_WITH_FOREIGN_BODY = (
    b'<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<SOAP:Header/><SOAP:Body><hei>ikke ebXML</hei></SOAP:Body></SOAP:Envelope>"
)


@pytest.mark.parametrize(
    ("body", "content_type", "rule_id", "error_code"),
    [
        pytest.param(b"Hei KPR!", "text/plain", "EBMS-MIME-CONTENT-TYPE", "MimeProblem", id="text"),
        pytest.param(
            b"\x00\xff\xfe binary", None, "EBMS-MIME-CONTENT-TYPE", "MimeProblem", id="no-ct"
        ),
        pytest.param(
            b"no boundary here",
            'multipart/related; type="text/xml"; boundary="abc"',
            "EBMS-MIME-BOUNDARY",
            "MimeProblem",
            id="not-mime",
        ),
        pytest.param(b"<ikke xml", "text/xml", "EBMS-SOAP-NOT-XML", "OtherXml", id="not-xml"),
        pytest.param(
            _SOAP_WITHOUT_EBMS, "text/xml", "EBMS-HEADER-MISSING", "OtherXml", id="not-ebxml"
        ),
        pytest.param(
            _SOAP_WITH_FOREIGN_BODY,
            "text/xml",
            "EBMS-ENVELOPE-UNEXPECTED-BLOCK",
            "OtherXml",
            id="foreign-body",
        ),
    ],
)
async def test_garbage_gets_message_error_and_audit_record(
    intake: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    body: bytes,
    content_type: str | None,
    rule_id: str,
    error_code: str,
) -> None:
    r = await post_raw(intake, body, content_type)
    assert_single_error(r, rule_id, error_code)
    message = await assert_stored_error(sessions, r, rule_id)
    assert message.ebms_message_id is None
    assert message.from_party_id is None


# --- accepted variants -----------------------------------------------------------------------


@pytest.mark.parametrize("cte", ["7bit", "8bit", "binary", "base64", "quoted-printable"])
async def test_every_transfer_encoding_of_the_soap_part_is_accepted(
    intake: httpx.AsyncClient, pki: DevPki, cte: str
) -> None:
    built = epj_message(pki, soap_cte=cte)
    assert f"Content-Transfer-Encoding: {cte}\r\n".encode() in built.body
    assert_accepted(pki, await post(intake, built))


def _must_understand_true(root: etree._Element) -> None:
    marked = 0
    for el in root.iter(f"{{{EB_NS}}}MessageHeader", f"{{{EB_NS}}}AckRequested"):
        el.set(f"{{{SOAP_NS}}}mustUnderstand", "true")
        marked += 1
    assert marked == 2


async def test_must_understand_true_is_accepted(intake: httpx.AsyncClient, pki: DevPki) -> None:
    built = edited_message(pki, _must_understand_true)
    assert b'mustUnderstand="true"' in built.soap
    assert_accepted(pki, await post(intake, built))


# --- size: 413 before the body is read -------------------------------------------------------

SMALL_MAX = 4096


@pytest.fixture
async def small_intake(
    settings_with_pki: Settings, demo_party: int
) -> AsyncIterator[httpx.AsyncClient]:
    """An intake that accepts at most SMALL_MAX bytes."""
    small = settings_with_pki.model_copy(update={"max_message_bytes": SMALL_MAX})
    application = create_app(small)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
            yield c


class CountingBody:
    """A streamed request body that counts how many chunks the server pulled."""

    def __init__(self, chunks: int, size: int) -> None:
        self.chunks = chunks
        self.size = size
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b"x" * self.size


async def _too_large_row(sessions: async_sessionmaker[AsyncSession]) -> tuple[Message, list[str]]:
    async with sessions() as s:
        message = (await s.scalars(select(Message).options(undefer(Message.raw)))).one()
        rules = list(
            await s.scalars(select(Finding.rule_id).where(Finding.message_id == message.id))
        )
    return message, rules


async def test_declared_content_length_over_max_is_413_without_reading_the_body(
    small_intake: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = CountingBody(chunks=10, size=1000)
    r = await small_intake.post(
        "/ebms",
        content=body,
        headers={"Content-Type": "multipart/related", "Content-Length": "10000"},
    )
    assert r.status_code == 413
    assert body.pulled == 0
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["error"] == "PayloadTooLarge"
    assert "10000" in r.json()["detail"]
    message, rules = await _too_large_row(sessions)
    assert message.status == "TOO_LARGE"
    assert message.size_bytes == 10000
    assert message.raw is None
    assert message.sha256 is None  # never read, so no hash that could pass for a real one
    assert rules == ["EBMS-TOO-LARGE"]


async def test_chunked_body_over_max_is_413_and_stops_reading(
    small_intake: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = CountingBody(chunks=50, size=1000)
    r = await small_intake.post("/ebms", content=body, headers={"Content-Type": "text/xml"})
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 413
    assert body.pulled < 50  # reading stopped at the cap
    message, rules = await _too_large_row(sessions)
    assert message.status == "TOO_LARGE"
    assert message.size_bytes > SMALL_MAX
    assert message.raw is None
    assert rules == ["EBMS-TOO-LARGE"]


async def test_body_at_the_max_is_read(
    small_intake: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    r = await post_raw(small_intake, b"x" * SMALL_MAX, "text/plain")
    assert_single_error(r, "EBMS-MIME-CONTENT-TYPE", "MimeProblem")
    await assert_stored_error(sessions, r, "EBMS-MIME-CONTENT-TYPE")


# --- sender-controlled values that do not fit their columns: an answer, never an outage -------


@pytest.mark.databases("sqlite", "postgresql")
@pytest.mark.parametrize(
    "her",
    [pytest.param("9" * 40, id="too-many-digits"), pytest.param("８０００００１", id="full-width")],
)
async def test_from_her_id_that_cannot_be_a_registered_party_is_from_unknown(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession], her: str
) -> None:
    # The full-width digits read as 8000001 with int(); they must not find that party.
    r = await post(intake, epj_message(pki, from_her=her))
    assert_single_error(r, "EBMS-NOT-AUTHENTICATED", "SecurityFailure")
    await assert_stored_error(sessions, r, "EBMS-FROM-UNKNOWN")


@pytest.mark.databases("sqlite", "postgresql")
async def test_overlong_ebxml_and_msghead_ids_are_accepted(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Neither ebMS nor MsgHead limits the length of MessageId / MsgId.
    message_id = "m" * 600 + "@epj.example"
    r = await post(intake, epj_message(pki, msghead(msg_id="h" * 300), message_id=message_id))
    assert_accepted(pki, r)
    message, _, _ = await stored_message(sessions, r.request.content)
    assert message.status == "OK"
    assert message.ebms_message_id is not None
    assert message.ebms_message_id.startswith("m" * 400)
    assert message.msghead_msg_id is not None
    assert message.msghead_msg_id.startswith("h" * 100)


def _melding_edited(old: str, new: str) -> bytes:
    melding = build_sample(2, "0301").decode()
    assert old in melding
    edited = melding.replace(old, new, 1).encode()
    return wrap_in_msghead(
        edited, int(DEMO_HER), 131725, str(uuid.uuid4()), datetime.now(UTC).replace(microsecond=0)
    )


def _first_attribute(name: str) -> str:
    melding = etree.fromstring(build_sample(2, "0301"))
    value = next(el.get(name) for el in melding.iter() if el.get(name) is not None)
    assert value is not None
    return f'{name}="{value}"'


@pytest.mark.databases("sqlite", "postgresql")
@pytest.mark.parametrize(
    ("old", "new", "status"),
    [
        pytest.param(_first_attribute("fid"), 'fid="123456789012345"', "3", id="fid"),
        pytest.param(_first_attribute("brukerNr"), f'brukerNr="{"B" * 150}"', "3", id="brukerNr"),
        pytest.param('kommuneNr="0301"', 'kommuneNr="030199"', "2", id="kommuneNr"),
    ],
)
async def test_overlong_content_values_get_an_apprec_and_are_stored(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    old: str,
    new: str,
    status: str,
) -> None:
    r = await post(intake, epj_message(pki, _melding_edited(old, new)))
    assert r.status_code == 200
    reply = reply_of(pki, r)
    assert reply.header is not None
    assert reply.header.action == "APPREC", reply.header.errors
    assert reply.apprec is not None
    assert parse_apprec(reply.apprec).status == status
    message, findings, receipts = await stored_message(sessions, r.request.content)
    assert message.status in ("AVVIST", "OK_FEIL_I_DELMELDING")
    assert findings
    assert [x.body for x in receipts] == [r.content]
    # A value too long for its column is never cut into something that looks valid.
    assert all(f.fid is None or len(PROTECTOR.open(f.fid)) == 11 for f in findings)
    assert all(f.kommune_nr in (None, "0301") for f in findings)


# --- the database is down: still an answer, never a 500 ---------------------------------------


DOWN_MAX = 256 * 1024  # room for a real message


@pytest.fixture
async def intake_without_database(tmp_path: Path, pki: DevPki) -> AsyncIterator[httpx.AsyncClient]:
    """An intake whose database cannot be reached (nothing listens on port 1)."""
    settings = Settings(
        _env_file=None,
        env=Env.TEST,
        database_url="postgresql+asyncpg://kpr@127.0.0.1:1/kpr",
        pki_dir=tmp_path / "pki",
        max_message_bytes=DOWN_MAX,
        log_format="json",
    )
    write_dev_pki(settings.pki_dir, pki)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
            yield c


async def test_database_down_still_answers_413_and_message_error(
    intake_without_database: httpx.AsyncClient, pki: DevPki
) -> None:
    too_large = await intake_without_database.post(
        "/ebms", content=b"x" * (DOWN_MAX + 1), headers={"Content-Type": "text/xml"}
    )
    assert too_large.status_code == 413
    r = await post(intake_without_database, epj_message(pki))
    # Temporary: severity Warning, so the sender's MSH retries (ebMS 2.0: Error is final).
    assert_single_error(r, "EBMS-UNAVAILABLE", "DeliveryFailure", severity="Warning")
