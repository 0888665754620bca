"""Issue 9 through HTTP: act only on what is signed, spend nothing on what is not.

Each attack is built on a correctly signed message and then changed only where the ebMS
signature does not look (elements with the nextMSH/next actor, a MIME part whose Content-ID
collides with the signed one, a comment inside signed text). Where it matters the test first
shows that the signature still verifies, with our verifier or with `xmlsec1` itself, so the
refusal is ours and not a broken signature.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import undefer

from app.core.findings import Finding as CheckFinding
from app.dev.client import SendOptions, build_ebxml, prepare_payload, read_reply
from app.dev.devpki import DevPki
from app.ebxml import build as ebuild
from app.ebxml import rules as ebxml_rules
from app.ebxml.build import BuiltMessage, Payload
from app.ebxml.envelope import EB_NS, SOAP_NS
from app.ebxml.mime import parse_body
from app.intake.stages import envelope_signer
from app.models import Finding, Message, MessageDedup, MessageEvent, NotificationOutbox, Receipt
from app.platform.settings import Settings
from app.security import cms, xmldsig
from app.security.xmldsig import cid_uri
from tests.integration.messages import (
    DEMO_HER,
    PILOT_HER,
    assert_signed_ok_reply,
    epj_message,
    msghead,
    post,
    reply_of,
)
from tests.integration.test_intake_security import running
from tests.integration.test_interop_tools import PKCS7, Tools, run, tool

# signatures and MIME: no SQL that differs between the databases
pytestmark = pytest.mark.databases("sqlite")

NEXT_MSH = "urn:oasis:names:tc:ebxml-msg:actor:nextMSH"
NEXT = "http://schemas.xmlsoap.org/soap/actor/next"
SIGNAL_SERVICE = "urn:oasis:names:tc:ebxml-msg:service"


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def tools(settings_with_pki: Settings, tmp_path: Path) -> Tools:
    return Tools(tool("xmlsec1"), tool("openssl"), settings_with_pki.pki_dir, tmp_path)


def with_soap(built: BuiltMessage, soap: bytes) -> BuiltMessage:
    """The same MIME message with its SOAP part replaced byte for byte."""
    assert built.body.count(built.soap) == 1
    body = built.body.replace(built.soap, soap)
    return BuiltMessage(body, built.content_type, soap, built.message_id, built.soap_content_id)


def with_body(built: BuiltMessage, body: bytes) -> BuiltMessage:
    return BuiltMessage(body, built.content_type, built.soap, built.message_id, None)


def payload_part(built: BuiltMessage) -> tuple[str, bytes]:
    mime = parse_body(built.body, built.content_type).message
    assert mime is not None
    ((att,),) = (mime.attachments,)
    return att.content_id, att.data


def still_verifies(soap: bytes, built: BuiltMessage) -> None:
    """Our verifier accepts the envelope signature of the changed SOAP part: the change is
    outside what the signature covers."""
    mime = parse_body(built.body, built.content_type).message
    assert mime is not None
    assert xmldsig.verify_envelope(soap, mime.attachment_map).valid


def forged_header(soap: bytes, *, actor: str, message_id: str) -> bytes:
    """A copy of the signed eb:MessageHeader with `actor` and another MessageId."""
    start = soap.index(b"<eb:MessageHeader")
    end = soap.index(b"</eb:MessageHeader>") + len(b"</eb:MessageHeader>")
    copy = soap[start:end].replace(
        b"<eb:MessageHeader", f'<eb:MessageHeader SOAP:actor="{actor}"'.encode(), 1
    )
    return re.sub(
        rb"<eb:MessageId>[^<]*</eb:MessageId>",
        f"<eb:MessageId>{message_id}</eb:MessageId>".encode(),
        copy,
    )


def insert_header(soap: bytes, forged: bytes, *, before: bool) -> bytes:
    if before:
        at = soap.index(b"<eb:MessageHeader")
    else:
        at = soap.index(b"</eb:MessageHeader>") + len(b"</eb:MessageHeader>")
    return soap[:at] + forged + soap[at:]


def boundary(content_type: str) -> bytes:
    match = re.search(r'boundary="([^"]+)"', content_type)
    assert match is not None
    return match.group(1).encode()


def add_part(built: BuiltMessage, content_id: str, data: bytes) -> bytes:
    """The body with one more MIME part before the closing delimiter."""
    closing = b"--" + boundary(built.content_type) + b"--"
    at = built.body.rindex(closing)
    part = (
        b"--" + boundary(built.content_type) + b"\r\n"
        b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
        b"Content-Transfer-Encoding: binary\r\n"
        b"Content-ID: <" + content_id.encode() + b">\r\n\r\n" + data + b"\r\n"
    )
    return built.body[:at] + part + built.body[at:]


def first_manifest_reference(soap: bytes, href: str, actor: str) -> bytes:
    opening = re.search(rb"<eb:Manifest[^>]*>", soap)
    assert opening is not None
    ref = (f'<eb:Reference xlink:href="{href}" xlink:type="simple" SOAP:actor="{actor}"/>').encode()
    return soap[: opening.end()] + ref + soap[opening.end() :]


def error_rules(pki: DevPki, r: httpx.Response, *, signed: bool) -> list[str]:
    assert r.status_code == 200, r.text[:300]
    reply = reply_of(pki, r)
    assert reply.header is not None
    assert reply.header.action == "MessageError", reply.header.action
    assert reply.signed is signed
    return [(e.description or "")[1:].split("]")[0] for e in reply.header.errors]


async def stored(
    sessions: async_sessionmaker[AsyncSession], body: bytes
) -> tuple[Message, list[str], list[str]]:
    """The message stored for `body`, its finding rule ids and event kinds."""
    async with sessions() as s:
        msg = (
            await s.scalars(
                select(Message)
                .where(Message.sha256 == hashlib.sha256(body).hexdigest())
                .options(undefer(Message.raw))
            )
        ).one()
        rules = list(await s.scalars(select(Finding.rule_id).where(Finding.message_id == msg.id)))
        kinds = list(
            await s.scalars(select(MessageEvent.kind).where(MessageEvent.message_id == msg.id))
        )
    return msg, rules, kinds


async def count(sessions: async_sessionmaker[AsyncSession], model: type[object]) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


# --- 1. content outside the signature --------------------------------------------------------


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
@pytest.mark.parametrize("actor", [NEXT_MSH, NEXT], ids=["nextMSH", "next"])
async def test_forged_message_header_outside_the_signature_is_refused(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    before: bool,
    actor: str,
) -> None:
    """A replay of an accepted message with a second MessageHeader (the real sender, a new
    MessageId) that the signature leaves out: once processed as new, now refused."""
    original = epj_message(pki)
    assert_signed_ok_reply(reply_of(pki, await post(intake, original)), original.message_id)
    forged_id = f"{uuid.uuid4()}@forged.example"
    soap = insert_header(
        original.soap,
        forged_header(original.soap, actor=actor, message_id=forged_id),
        before=before,
    )
    still_verifies(soap, original)
    replay = with_soap(original, soap)

    r = await post(intake, replay)

    both = ["EBMS-ENVELOPE-UNSIGNED-BLOCK", "EBMS-ENVELOPE-BLOCK-REPEATED"]
    assert error_rules(pki, r, signed=False) == both
    message, rules, kinds = await stored(sessions, replay.body)
    assert (message.status, rules) == ("MESSAGE_ERROR", both)
    assert "signature_checked" not in kinds
    assert await count(sessions, MessageDedup) == 1  # only the original holds a claim


@pytest.mark.tools
async def test_forged_header_on_a_message_signed_by_xmlsec1_verifies_there_and_is_refused(
    intake: httpx.AsyncClient,
    pki: DevPki,
    tools: Tools,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    encrypted = tools.encrypt(tools.sign_document(msghead()), "-aes256")
    built = build_ebxml(
        Payload(encrypted, PKCS7),
        SendOptions(from_her=DEMO_HER),
        None,
        sign=tools.envelope_signer(),
    )
    assert b"<ds:SignatureValue>" in built.soap
    soap = insert_header(
        built.soap,
        forged_header(built.soap, actor=NEXT_MSH, message_id="forged@forged.example"),
        before=True,
    )
    # xmlsec1 itself says the signature still holds: the header is outside what it covers.
    cid, data = payload_part(built)
    (tools.work / "forged.xml").write_bytes(soap)
    (tools.work / "part.bin").write_bytes(data)
    run(
        tools.xmlsec1, "--verify", "--pubkey-cert-pem", tools.keys / "municipality-signing.crt",
        f"--url-map:{cid_uri(cid)}", tools.work / "part.bin", tools.work / "forged.xml",
    )  # fmt: skip
    forged = with_soap(built, soap)

    r = await post(intake, forged)

    assert error_rules(pki, r, signed=False) == [
        "EBMS-ENVELOPE-UNSIGNED-BLOCK",
        "EBMS-ENVELOPE-BLOCK-REPEATED",
    ]
    assert await count(sessions, MessageDedup) == 0
    # The message as signed is processed normally.
    assert_signed_ok_reply(reply_of(pki, await post(intake, built)), built.message_id)


async def test_payload_swapped_through_a_colliding_content_id_is_refused_and_the_real_message_is_not_spoiled(  # noqa: E501
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A second part whose Content-ID normalises to the signed part's, named by an extra
    Manifest reference with the next actor: once the signed part was verified and the other
    decrypted and acknowledged, and the real message was later refused as a duplicate."""
    real = epj_message(pki)
    cid, _ = payload_part(real)
    _, other = payload_part(epj_message(pki, msghead(kommune="0301")))
    soap = first_manifest_reference(real.soap, f"cid:cid:{cid}", NEXT)
    attack = with_soap(real, soap)
    attack = with_body(attack, add_part(attack, f"cid:{cid}", other))

    r = await post(intake, attack)

    assert error_rules(pki, r, signed=False) == ["EBMS-MIME-CID-DUPLICATE"]
    _, _, kinds = await stored(sessions, attack.body)
    assert "decrypted" not in kinds
    assert await count(sessions, MessageDedup) == 0
    assert_signed_ok_reply(reply_of(pki, await post(intake, real)), real.message_id)


async def test_manifest_reference_outside_the_signature_is_refused(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    real = epj_message(pki)
    cid, _ = payload_part(real)
    soap = first_manifest_reference(real.soap, f"cid:{cid}", NEXT)
    still_verifies(soap, real)
    attack = with_soap(real, soap)
    r = await post(intake, attack)
    assert error_rules(pki, r, signed=False) == ["EBMS-ENVELOPE-UNSIGNED-BLOCK"]


@pytest.mark.parametrize(
    "block",
    [
        f'<eb:SyncReply SOAP:actor="{NEXT_MSH}" SOAP:mustUnderstand="1" eb:version="2.0"/>',
        f'<eb:AckRequested SOAP:actor="{NEXT_MSH}" SOAP:mustUnderstand="1" eb:version="2.0" '
        'eb:signed="false"/>',
    ],
    ids=["SyncReply", "AckRequested"],
)
async def test_hop_by_hop_blocks_outside_the_signature_are_ignored_not_refused(
    intake: httpx.AsyncClient, pki: DevPki, block: str
) -> None:
    """The profile lets an intermediary add SyncReply/AckRequested for the next hop: they are
    dropped before reading (the signed AckRequested stays the one that counts)."""
    real = epj_message(pki)
    at = real.soap.index(b"</eb:MessageHeader>") + len(b"</eb:MessageHeader>")
    soap = real.soap[:at] + block.encode() + real.soap[at:]
    still_verifies(soap, real)
    reply = reply_of(pki, await post(intake, with_soap(real, soap)))
    apprec = assert_signed_ok_reply(reply, real.message_id)
    assert apprec.status == "1"


@pytest.mark.parametrize("spelling", ["<{cid}>", "<cid:{cid}>", "< {cid} >"])
async def test_parts_whose_content_ids_normalise_alike_are_refused(
    intake: httpx.AsyncClient, pki: DevPki, spelling: str
) -> None:
    real = epj_message(pki)
    cid, data = payload_part(real)
    body = add_part(real, spelling.format(cid=cid)[1:-1], data)
    r = await post(intake, with_body(real, body))
    assert error_rules(pki, r, signed=False) == ["EBMS-MIME-CID-DUPLICATE"]


async def test_duplicate_manifest_reference_is_refused(
    intake: httpx.AsyncClient, pki: DevPki
) -> None:

    def twice(root: etree._Element, parts: Mapping[str, bytes]) -> etree._Element:
        manifest = root.find(f"{{{SOAP_NS}}}Body/{{{EB_NS}}}Manifest")
        assert manifest is not None
        manifest.append(etree.fromstring(etree.tostring(manifest[0])))
        return xmldsig.sign_envelope(root, parts, pki.municipality.signing)

    payload = prepare_payload(
        msghead(), signing=pki.municipality.signing, encrypt_to=pki.kpr.encryption.certificate
    )
    built = build_ebxml(payload, SendOptions(from_her=DEMO_HER), None, sign=twice)
    r = await post(intake, built)
    assert error_rules(pki, r, signed=False) == ["EBMS-MANIFEST-REF-DUPLICATE"]


@pytest.mark.tools
async def test_comment_inside_a_signed_msgid_does_not_hide_a_reused_msgid(
    intake: httpx.AsyncClient,
    pki: DevPki,
    tools: Tools,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """`<MsgId>1111<!---->-2222</MsgId>` keeps an xmlsec1 signature valid (c14n drops
    comments); it must read as 1111-2222, so the MsgId duplicate check sees the reuse."""
    msg_id = f"1111-{uuid.uuid4()}"
    first = epj_message(pki, msghead(msg_id=msg_id))
    assert_signed_ok_reply(reply_of(pki, await post(intake, first)), first.message_id)

    signed = tools.sign_document(msghead(msg_id=msg_id))
    plain = f"<MsgId>{msg_id}</MsgId>".encode()
    assert signed.count(plain) == 1
    commented = signed.replace(plain, f"<MsgId>1111<!---->{msg_id[4:]}</MsgId>".encode())
    assert xmldsig.verify_document(commented).valid
    second = build_ebxml(
        Payload(tools.encrypt(commented, "-aes256"), PKCS7),
        SendOptions(from_her=DEMO_HER),
        pki.municipality.signing,
    )

    r = await post(intake, second)

    reply = reply_of(pki, r)
    assert reply.header is not None
    assert reply.header.action == "APPREC"
    message, rules, _ = await stored(sessions, second.body)
    assert message.msghead_msg_id == msg_id
    assert message.status == "AVVIST"
    assert "MSGHEAD-MSGID-DUPLICATE" in rules


# --- 2. work before authentication -----------------------------------------------------------


@pytest.mark.parametrize(
    ("elements", "why"), [(20_000, "bytes"), (2_000, "elements")], ids=["20000", "2000"]
)
async def test_envelope_built_for_the_quadratic_xpath_is_refused_before_the_signature(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    elements: int,
    why: str,
) -> None:
    """20 000 empty elements in the Body once took 40 s of xmlsec's XPath before the
    signature failed; now the shape check refuses them before xmlsec runs."""
    real = epj_message(pki)
    soap = real.soap.replace(b"</SOAP:Body>", b"<e/>" * elements + b"</SOAP:Body>")
    bomb = with_soap(real, soap)
    assert (len(soap) > 64 * 1024) is (why == "bytes")
    r = await post(intake, bomb)
    assert error_rules(pki, r, signed=False) == ["EBMS-ENVELOPE-TOO-COMPLEX"]
    _, rules, kinds = await stored(sessions, bomb.body)
    assert rules == ["EBMS-ENVELOPE-TOO-COMPLEX"]
    assert "signature_checked" not in kinds


async def test_deeply_nested_envelope_is_refused(intake: httpx.AsyncClient, pki: DevPki) -> None:
    real = epj_message(pki)
    deep = b"<eb:Description xml:lang='no'>" + b"<x>" * 40 + b"</x>" * 40 + b"</eb:Description>"
    soap = real.soap.replace(b"</eb:MessageHeader>", deep + b"</eb:MessageHeader>")
    r = await post(intake, with_soap(real, soap))
    assert error_rules(pki, r, signed=False) == ["EBMS-ENVELOPE-TOO-COMPLEX"]


@pytest.mark.parametrize("who", ["unregistered", "bad-signature"])
async def test_body_of_an_unauthenticated_request_is_not_stored_in_full(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    who: str,
) -> None:
    junk = Payload(os.urandom(1024 * 1024), PKCS7)
    if who == "unregistered":
        opts = SendOptions(from_her="8000099")
        built = build_ebxml(junk, opts, pki.municipality.signing)
    else:
        built = build_ebxml(junk, SendOptions(from_her=DEMO_HER), pki.kpr.signing)
    r = await post(intake, built)
    assert error_rules(pki, r, signed=False) == ["EBMS-NOT-AUTHENTICATED"]
    message, _, _ = await stored(sessions, built.body)
    assert message.size_bytes == len(built.body)
    assert message.sha256 == hashlib.sha256(built.body).hexdigest()
    assert message.raw == built.body[:4096]
    assert message.raw_ref == f"first 4096 of {len(built.body)} bytes: not authenticated"


async def test_body_of_an_authenticated_request_is_stored_in_full(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    built = epj_message(pki, msghead(200))
    assert len(built.body) > 4096
    assert_signed_ok_reply(reply_of(pki, await post(intake, built)), built.message_id)
    message, _, _ = await stored(sessions, built.body)
    assert (message.raw, message.raw_ref) == (built.body, None)


def _gzip_bomb(elements: int) -> bytes:
    head = b'<?xml version="1.0"?><MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24">'
    return gzip.compress(head + b"<a/>" * elements + b"</MsgHead>", mtime=0)


async def test_gzip_bomb_is_refused_by_its_element_count_before_a_tree_is_built(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    bomb = _gzip_bomb(2_000_000)  # 8 MB inflated, within the byte cap; 2x the element cap
    assert len(bomb) < 64 * 1024
    payload = Payload(cms.encrypt_enveloped(bomb, pki.kpr.encryption.certificate), PKCS7)
    built = build_ebxml(payload, SendOptions(from_her=DEMO_HER), pki.municipality.signing)
    r = await post(intake, built)
    reply = reply_of(pki, r)
    assert reply.header is not None
    assert reply.header.action == "APPREC"
    message, rules, kinds = await stored(sessions, built.body)
    assert (message.status, rules) == ("AVVIST", ["SEC-PAYLOAD-TOO-MANY-ELEMENTS"])
    assert "validated" not in kinds


async def test_gzip_bomb_is_refused_by_the_inflated_size_cap(
    settings_with_pki: Settings,
    demo_party: int,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    settings = settings_with_pki.model_copy(update={"max_payload_bytes": 1024 * 1024})
    bomb = _gzip_bomb(300_000)  # 1.2 MB inflated
    payload = Payload(cms.encrypt_enveloped(bomb, pki.kpr.encryption.certificate), PKCS7)
    built = build_ebxml(payload, SendOptions(from_her=DEMO_HER), pki.municipality.signing)
    async with running(settings) as client:
        r = await post(client, built)
    assert reply_of(pki, r).header is not None
    message, rules, _ = await stored(sessions, built.body)
    assert (message.status, rules) == ("AVVIST", ["SEC-GZIP-TOO-LARGE"])


# --- 3. trust given too easily ---------------------------------------------------------------


def _signal(
    pki: DevPki, action: str, *, ref_to: str, sign: bool = True, service: str = SIGNAL_SERVICE
) -> BuiltMessage:
    """An ebMS signal from the demo municipality to KPR (a MessageError, or that envelope
    turned into an Acknowledgment or another signal before it is signed)."""
    signer = envelope_signer(pki.municipality.signing)

    def shape(root: etree._Element, parts: Mapping[str, bytes]) -> etree._Element:
        header = root.find(f"{{{SOAP_NS}}}Header")
        assert header is not None
        mh = header.find(f"{{{EB_NS}}}MessageHeader")
        assert mh is not None
        mh.find(f"{{{EB_NS}}}Action").text = action  # type: ignore[union-attr]
        mh.find(f"{{{EB_NS}}}Service").text = service  # type: ignore[union-attr]
        if action != "MessageError":
            error_list = header.find(f"{{{EB_NS}}}ErrorList")
            assert error_list is not None
            header.remove(error_list)
        if action == "Acknowledgment":
            ack = etree.SubElement(header, f"{{{EB_NS}}}Acknowledgment")
            ack.set(f"{{{SOAP_NS}}}mustUnderstand", "1")
            ack.set(f"{{{EB_NS}}}version", "2.0")
            etree.SubElement(ack, f"{{{EB_NS}}}Timestamp").text = "2026-01-01T00:00:00Z"
            etree.SubElement(ack, f"{{{EB_NS}}}RefToMessageId").text = ref_to
        assert signer is not None
        return signer(root, parts) if sign else root

    return ebuild.build_message_error(
        [CheckFinding(ebxml_rules.TO_UNKNOWN, "x", "test")],
        from_party=ebuild.her_party(DEMO_HER),
        to_party=ebuild.her_party(PILOT_HER),
        cpa_id="kpr-pilot",
        conversation_id=str(uuid.uuid4()),
        ref_to_message_id=ref_to,
        message_id=f"{uuid.uuid4()}@epj.example",
        timestamp=datetime.now(UTC),
        sign=shape,
    )


@pytest.mark.parametrize("action", ["Acknowledgment", "MessageError"])
async def test_signed_signal_is_recorded_as_a_signal_never_as_a_report(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    action: str,
) -> None:
    """Once stored as OK with an OK AppRec and an "IPLOS-melding mottatt (OK)" email."""
    sent = epj_message(pki)
    ok = reply_of(pki, await post(intake, sent))
    assert ok.header is not None
    signal = _signal(pki, action, ref_to=ok.header.message_id)
    assert xmldsig.verify_envelope(signal.soap, {}).valid
    before = await count(sessions, NotificationOutbox)

    r = await post(intake, signal)

    assert (r.status_code, r.content) == (204, b"")
    message, rules, kinds = await stored(sessions, signal.body)
    assert (message.status, rules) == ("SIGNAL", [])
    assert "signal" in kinds
    assert await count(sessions, NotificationOutbox) == before
    assert await count(sessions, Receipt) == 1  # only the reply to the business message
    assert await count(sessions, MessageDedup) == 1


async def test_unsigned_signal_is_refused_without_an_answer(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    signal = _signal(pki, "Acknowledgment", ref_to="x@kpr-mottak", sign=False)
    r = await post(intake, signal)
    assert (r.status_code, r.content) == (204, b"")  # never a MessageError to a signal
    message, rules, _ = await stored(sessions, signal.body)
    assert (message.status, rules) == ("SIGNAL_REFUSED", ["SEC-ENVELOPE-UNSIGNED-REFUSED"])
    assert await count(sessions, Receipt) == 0


async def test_signal_with_a_transport_error_is_not_answered_with_a_message_error(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    signal = _signal(pki, "MessageError", ref_to="x@kpr-mottak")
    soap = signal.soap.replace(
        b'<eb:PartyId eb:type="HER">131725<', b'<eb:PartyId eb:type="HER">999001<'
    )
    assert soap != signal.soap
    changed = with_soap(signal, soap)
    r = await post(intake, changed)
    assert (r.status_code, r.content) == (204, b"")
    message, rules, _ = await stored(sessions, changed.body)
    assert (message.status, rules) == ("SIGNAL_REFUSED", ["EBMS-TO-UNKNOWN"])


async def test_other_signals_are_not_supported(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    signal = _signal(pki, "Ping", ref_to="x@kpr-mottak")
    r = await post(intake, signal)
    assert error_rules(pki, r, signed=True) == ["EBMS-SIGNAL-NOT-SUPPORTED"]
    message, _, _ = await stored(sessions, signal.body)
    assert message.status == "MESSAGE_ERROR"


async def test_business_message_without_a_payload_is_refused(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A business Service/Action with no Manifest: refused, never an OK AppRec."""
    signal = _signal(pki, "KPR_IPL", ref_to="x@kpr-mottak", service="KPR_IPL")
    r = await post(intake, signal)
    assert error_rules(pki, r, signed=False) == ["EBMS-PAYLOAD-MISSING"]
    assert await count(sessions, Receipt) == 1  # the MessageError only


async def test_answers_before_authentication_do_not_tell_registered_from_unregistered(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """No registered-HER-id oracle, no CPA ids, no known-MessageId oracle, and no KPR
    signature over a MessageError whose To, ConversationId and RefToMessageId the caller
    chose."""
    sent = epj_message(pki)
    ok = reply_of(pki, await post(intake, sent))
    assert ok.header is not None
    known = ok.header.message_id
    probes = {
        "unregistered": build_ebxml(
            Payload(b"x" * 100, PKCS7),
            SendOptions(from_her="8000099", ref_to_message_id=known, cpa_id="probe"),
            pki.municipality.signing,
        ),
        "registered, wrong key": build_ebxml(
            Payload(b"x" * 100, PKCS7),
            SendOptions(from_her=DEMO_HER, ref_to_message_id=known, cpa_id="probe"),
            pki.kpr.signing,
        ),
        "registered, unknown ref": build_ebxml(
            Payload(b"x" * 100, PKCS7),
            SendOptions(from_her=DEMO_HER, ref_to_message_id="never@x", cpa_id="probe"),
            pki.kpr.signing,
        ),
    }
    texts: set[str] = set()
    for name, probe in probes.items():
        r = await post(intake, probe)
        reply = read_reply(r.content, r.headers["content-type"])
        assert reply.header is not None, name
        assert not reply.signed, name
        ((error,),) = (reply.header.errors,)
        assert (error.error_code, error.severity) == ("SecurityFailure", "Error"), name
        text = error.description or ""
        request_id = r.headers["x-request-id"]
        assert request_id in text, name  # the reference the operator looks up
        texts.add(text.replace(request_id, "<ref>"))
        assert "Bruk en av" not in text
    assert len(texts) == 1, texts


async def test_unsafe_msgid_is_never_shown_in_the_notification_email(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    phishing = "abc\nKPR: Logg inn på https://kpr-login.example for å se feilene"
    built = epj_message(pki, msghead(msg_id=phishing))
    assert (await post(intake, built)).status_code == 200
    safe = epj_message(pki, msghead(msg_id="{6A2B}-safe.id:1"))
    assert (await post(intake, safe)).status_code == 200
    async with sessions() as s:
        bodies = list(await s.scalars(select(NotificationOutbox.body)))
    assert bodies
    assert not any("kpr-login.example" in b or "\nKPR:" in b for b in bodies)
    assert any("ikke vist" in b for b in bodies)
    assert any("Meldingens MsgId: {6A2B}-safe.id:1" in b for b in bodies)


async def test_request_id_of_an_intake_answer_is_ours(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    built = epj_message(pki)
    headers = {**built.http_headers, "X-Request-ID": "chosen-by-the-client"}
    r = await intake.post("/ebms", content=built.body, headers=headers)
    assert r.headers["x-request-id"] != "chosen-by-the-client"
    message, _, _ = await stored(sessions, built.body)
    assert message.request_id == r.headers["x-request-id"]
