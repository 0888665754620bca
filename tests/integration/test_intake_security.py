"""Issue 5 through HTTP: every security failure, each in a message that breaks only that.

Transport failures (the ebXML envelope signature, its certificate, the CMS envelope) answer with
a signed eb:MessageError `SecurityFailure` whose one eb:Error names the rule; failures of the
business signature (MsgHead ds:Signature or CMS SignedData) answer with AppRec status 2 and
S01/S02; a missing CRL is our outage (DeliveryFailure) and a retry is processed afresh.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from lxml import etree
from sqlalchemy import ScalarResult, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.apprec.parse import parse_apprec
from app.core.xmlparse import parse_xml
from app.dev import devsetup
from app.dev.client import SendOptions, build_ebxml, prepare_payload
from app.dev.devpki import (
    DEV_MUNICIPALITY_ORGNR,
    DevPki,
    issue_certificate,
    make_ca,
    make_crl,
    rsa_key,
)
from app.dev.sample import build_sample, wrap_in_msghead
from app.ebxml.build import BuiltMessage, Payload, Signer
from app.ebxml.envelope import EbmsError
from app.ebxml.mime import parse_body
from app.main import create_app
from app.models import Finding, Message, MessageEvent
from app.parties import repository as party_repo
from app.parties.spec import certificate_spec
from app.platform.settings import KeyPair as KeyFiles
from app.platform.settings import Settings
from app.security import cms, xmldsig
from app.security.keys import KeyPair, describe_certificate, serial_hex, serial_text
from tests.integration.messages import DEMO_HER, PILOT_HER, msghead, post, reply_of

# signatures, certificates and CMS: no SQL that differs between the databases
pytestmark = pytest.mark.databases("sqlite")

PKCS7 = "application/pkcs7-mime; smime-type=enveloped-data"
IPL_NS = "http://www.npr.no/xmlstds/56_0_0_ipl"
OTHER_ORGNR = "930000000"  # made up, valid check digit, not the demo municipality's


# --- helpers --------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def options(**changes: object) -> SendOptions:
    return replace(SendOptions(from_her=DEMO_HER), **changes)  # type: ignore[arg-type]


def message(
    pki: DevPki,
    *,
    head: bytes | None = None,
    envelope_key: KeyPair | None = None,
    document_key: KeyPair | None = None,
    encrypt_to: x509.Certificate | None = None,
    plaintext: bool = False,
    sign_document: bool = True,
    gzip: bool = False,
    sign: Signer | None = None,
    **opts: object,
) -> tuple[BuiltMessage, Payload]:
    """A message as the demo municipality's EPJ builds it, with any one piece swapped."""
    payload = prepare_payload(
        head if head is not None else msghead(),
        signing=document_key or pki.municipality.signing,
        encrypt_to=None if plaintext else (encrypt_to or pki.kpr.encryption.certificate),
        sign_document=sign_document,
        gzip=gzip,
    )
    built = build_ebxml(
        payload, options(**opts), envelope_key or pki.municipality.signing, sign=sign
    )
    return built, payload


def chained_msghead(previous: bytes, seed: int = 1) -> bytes:
    """A MsgHead whose notifications continue the løpenummer chain of `previous`."""
    notes = list(parse_xml(previous, huge=True).iter(f"{{{IPL_NS}}}Notifikasjon"))
    last = notes[-1]
    melding = build_sample(
        len(notes),
        "0301",
        seed=seed,
        start_lopenr=int(last.get("notifikasjonLopeNr", "0")) + 1,
        previous_guid=last.get("notifikasjonGUID", ""),
    )
    return wrap_in_msghead(
        melding, int(DEMO_HER), int(PILOT_HER), str(uuid.uuid4()), _now().replace(microsecond=0)
    )


def encrypted_payload(data: bytes, recipient: x509.Certificate) -> Payload:
    return Payload(cms.encrypt_enveloped(data, recipient), PKCS7)


def signed_msghead(key: KeyPair, head: bytes | None = None) -> bytes:
    signed = xmldsig.sign_document(parse_xml(head or msghead(), huge=True), key)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def with_body(built: BuiltMessage, body: bytes) -> BuiltMessage:
    return BuiltMessage(body, built.content_type, built.soap, built.message_id, None)


def rule_of(error: EbmsError) -> str:
    text = error.description or ""
    assert text.startswith("["), text
    return text[1 : text.index("]")]


def message_error(pki: DevPki, r: httpx.Response, *, signed: bool = True) -> tuple[EbmsError, ...]:
    """The eb:Errors of a MessageError reply; signed by KPR only once the sender is
    authenticated."""
    assert r.status_code == 200
    reply = reply_of(pki, r)
    assert reply.findings == ()
    assert reply.header is not None
    assert reply.header.action == "MessageError", reply.header.action
    assert reply.signed is signed
    assert reply.signature_findings == ()
    return reply.header.errors


def assert_only_error(
    pki: DevPki, r: httpx.Response, rule: str, code: str, *, signed: bool = True
) -> str:
    """The reply is a MessageError with exactly one eb:Error, for `rule`; returns its text."""
    errors = message_error(pki, r, signed=signed)
    assert [(rule_of(e), e.error_code) for e in errors] == [(rule, code)], errors
    return errors[0].description or ""


def assert_refused(pki: DevPki, r: httpx.Response) -> None:
    """Refused before authentication: the one generic answer, unsigned, naming nothing."""
    text = assert_only_error(pki, r, "EBMS-NOT-AUTHENTICATED", "SecurityFailure", signed=False)
    assert "CN=" not in text
    assert DEV_MUNICIPALITY_ORGNR not in text


async def stored_detail(sessions: async_sessionmaker[AsyncSession], rule: str) -> str:
    """The newest message's one stored finding, which must be `rule`: its text, the detail
    the operator sees in place of the sender."""
    async with sessions() as s:
        msg = (await s.scalars(select(Message).order_by(Message.id.desc()).limit(1))).one()
        found = list(await s.scalars(select(Finding).where(Finding.message_id == msg.id)))
    assert [f.rule_id for f in found] == [rule]
    return found[0].detail


def apprec(pki: DevPki, r: httpx.Response) -> tuple[str, list[str], list[str]]:
    """(status, error codes, error texts) of the AppRec in the reply."""
    assert r.status_code == 200
    reply = reply_of(pki, r)
    assert reply.header is not None
    assert reply.header.action == "APPREC", reply.header.errors
    assert reply.signature_findings == ()
    assert reply.apprec is not None
    parsed = parse_apprec(reply.apprec)
    return parsed.status, [e.code for e in parsed.errors], [e.ot or "" for e in parsed.errors]


async def last_message(
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[Message, list[str], list[str]]:
    """The newest message, its finding rule ids and its event kinds."""
    async with sessions() as s:
        msg = (await s.scalars(select(Message).order_by(Message.id.desc()).limit(1))).one()
        rules = list(await s.scalars(select(Finding.rule_id).where(Finding.message_id == msg.id)))
        kinds = list(
            await s.scalars(
                select(MessageEvent.kind)
                .where(MessageEvent.message_id == msg.id)
                .order_by(MessageEvent.id)
            )
        )
    return msg, rules, kinds


async def event_details(
    sessions: async_sessionmaker[AsyncSession], kind: str
) -> list[dict[str, Any]]:
    async with sessions() as s:
        rows: ScalarResult[dict[str, Any]] = await s.scalars(
            select(MessageEvent.detail).where(MessageEvent.kind == kind).order_by(MessageEvent.id)
        )
        return list(rows)


async def register(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    signing: tuple[x509.Certificate, ...] = (),
    plaintext_allowed: bool = False,
) -> None:
    """Add certificates (or plaintext permission) to the demo municipality."""
    spec = devsetup.demo_party(settings.pki_dir)
    extra = tuple(
        certificate_spec(c.public_bytes(serialization.Encoding.PEM), "signing") for c in signing
    )
    spec = replace(
        spec, certificates=spec.certificates + extra, plaintext_allowed=plaintext_allowed
    )
    async with sessions() as s:
        await party_repo.upsert_party(s, spec)
        await s.commit()


def expired_signing(pki: DevPki) -> KeyPair:
    """A signing certificate of the demo municipality from the dev CA that expired yesterday."""
    now = _now()
    return issue_certificate(
        pki.ca,
        common_name="Demo kommune (utløpt)",
        orgnr=DEV_MUNICIPALITY_ORGNR,
        purpose="signing",
        not_before=now - dt.timedelta(days=400),
        not_after=now - dt.timedelta(days=1),
    )


def foreign_signing() -> KeyPair:
    """The demo municipality's name and orgnr, but issued by a CA we do not trust."""
    now = _now()
    other_ca = make_ca(now, name="Ukjent CA")
    return issue_certificate(
        other_ca,
        common_name="Demo kommune",
        orgnr=DEV_MUNICIPALITY_ORGNR,
        purpose="signing",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=30),
    )


Opener = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app started from `settings` as they are now (the keyring reads the PKI dir then)."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
            yield c


def write_crl(pki: DevPki, directory: Path, revoked: tuple[int, ...] = ()) -> None:
    crl = make_crl(pki.ca, _now(), revoked_serials=revoked)
    (directory / "ca.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))


# --- the envelope signature: MessageError SecurityFailure -----------------------------------


async def test_envelope_signed_with_wrong_key_is_a_security_failure_naming_the_cert(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cert = pki.municipality.signing.certificate
    wrong = KeyPair(private_key=rsa_key("intake-security:wrong-key"), certificate=cert)
    built, _ = message(pki, envelope_key=wrong)
    r = await post(intake, built)
    assert_refused(pki, r)
    text = await stored_detail(sessions, "SEC-SIG-INVALID")
    assert cert.subject.rfc4514_string() in text
    assert serial_text(cert) in text
    assert cert.issuer.rfc4514_string() in text
    msg, rules, kinds = await last_message(sessions)
    assert msg.status == "MESSAGE_ERROR"
    assert rules == ["SEC-SIG-INVALID"]
    assert "decrypted" not in kinds  # nothing was opened for an unauthenticated sender


async def test_payload_tampered_after_signing_is_a_security_failure(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    built, payload = message(pki)
    at = built.body.index(payload.data) + len(payload.data) // 2
    body = built.body[:at] + bytes([built.body[at] ^ 0x01]) + built.body[at + 1 :]
    r = await post(intake, with_body(built, body))
    assert_refused(pki, r)
    await stored_detail(sessions, "SEC-SIG-INVALID")


async def test_header_tampered_after_signing_is_a_security_failure(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    conversation = "11111111-2222-4333-8444-555555555555"
    built, _ = message(pki, conversation_id=conversation)
    tampered = conversation.replace("1", "9")
    body = built.body.replace(conversation.encode(), tampered.encode())
    assert body != built.body
    r = await post(intake, with_body(built, body))
    assert_refused(pki, r)
    await stored_detail(sessions, "SEC-SIG-INVALID")


async def test_expired_registered_signing_cert_is_a_security_failure(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    settings_with_pki: Settings,
) -> None:
    expired = expired_signing(pki)
    await register(sessions, settings_with_pki, signing=(expired.certificate,))
    built, _ = message(pki, envelope_key=expired, document_key=expired)
    r = await post(intake, built)
    assert_refused(pki, r)
    text = await stored_detail(sessions, "SEC-CERT-VALIDITY")
    assert describe_certificate(expired.certificate)[1:] in text


async def test_revoked_signing_cert_is_a_security_failure(
    settings_with_pki: Settings,
    demo_party: int,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    serial = pki.municipality.signing.certificate.serial_number
    write_crl(pki, settings_with_pki.pki_dir, revoked=(serial,))
    async with running(settings_with_pki) as client:
        built, _ = message(pki)
        r = await post(client, built)
    assert_refused(pki, r)
    text = await stored_detail(sessions, "SEC-CERT-REVOKED")
    assert serial_hex(serial) in text


async def test_cert_of_another_organisation_from_our_ca_is_a_security_failure(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    now = _now()
    other = issue_certificate(
        pki.ca,
        common_name="Annen kommune",
        orgnr=OTHER_ORGNR,
        purpose="signing",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=30),
    )
    built, _ = message(pki, envelope_key=other, document_key=other)
    r = await post(intake, built)
    assert_refused(pki, r)
    text = await stored_detail(sessions, "SEC-CERT-ORGNR")
    assert OTHER_ORGNR in text
    assert DEV_MUNICIPALITY_ORGNR in text


async def test_cert_from_an_unknown_ca_is_a_security_failure(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    foreign = foreign_signing()
    built, _ = message(pki, envelope_key=foreign, document_key=foreign)
    r = await post(intake, built)
    assert_refused(pki, r)
    text = await stored_detail(sessions, "SEC-CERT-UNKNOWN")
    assert "Ukjent CA" in text


async def test_rsa_sha1_envelope_signature_is_accepted(
    intake: httpx.AsyncClient, pki: DevPki
) -> None:
    key = pki.municipality.signing

    def sign_sha1(root: etree._Element, parts: Mapping[str, bytes]) -> etree._Element:
        return xmldsig.sign_envelope(root, parts, key, signature_method=xmldsig.RSA_SHA1)

    built, _ = message(pki, sign=sign_sha1)
    assert xmldsig.RSA_SHA1.encode() in built.soap
    r = await post(intake, built)
    status, codes, _ = apprec(pki, r)
    assert (status, codes) == ("1", [])


def _weak_signer(method: str, key: KeyPair) -> Signer:
    """Sign the envelope correctly by the ebMS profile but with `method` (hmac-sha256 with a
    shared secret, or rsa-md5 with the municipality's key), the certificate in KeyInfo."""
    transform = {
        "hmac-sha256": xmlsec.constants.TransformHmacSha256,
        "rsa-md5": xmlsec.constants.TransformRsaMd5,
    }[method]

    def sign(envelope: etree._Element, parts: Mapping[str, bytes]) -> etree._Element:
        root = copy.deepcopy(envelope)
        header = root.find(f"{{{xmldsig.SOAP_NS}}}Header")
        assert header is not None
        sig = xmlsec.template.create(root, xmlsec.constants.TransformInclC14N, transform, ns="ds")
        header.append(sig)
        ref = xmlsec.template.add_reference(sig, xmlsec.constants.TransformSha256, uri="")
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
        xpath = xmlsec.template.add_transform(ref, xmlsec.constants.TransformXPath)
        xpath_el = etree.SubElement(
            xpath, f"{{{xmldsig.DS_NS}}}XPath", nsmap={"SOAP-ENV": xmldsig.SOAP_NS}
        )
        xpath_el.text = xmldsig.EBMS_XPATH
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformInclC14N)
        for cid in parts:
            xmlsec.template.add_reference(
                sig, xmlsec.constants.TransformSha256, uri=xmldsig.cid_uri(cid)
            )
        ctx = xmlsec.SignatureContext()
        if method == "hmac-sha256":
            ctx.key = xmlsec.Key.from_binary_data(
                xmlsec.constants.KeyDataHmac, b"delt hemmelighet 0123456789abcdef"
            )
        else:
            pem = key.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            ctx.key = xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatPem)
        with xmldsig._parts_in_scope({xmldsig.normalize_cid(c): d for c, d in parts.items()}):
            ctx.sign(sig)
        # KeyInfo is outside SignedInfo: add the certificate after signing, as a sender would.
        key_info = xmlsec.template.ensure_key_info(sig)
        data = xmlsec.template.add_x509_data(key_info)
        cert_el = xmlsec.template.x509_data_add_certificate(data)
        der = key.certificate.public_bytes(serialization.Encoding.DER)
        cert_el.text = base64.b64encode(der).decode()
        return root

    return sign


@pytest.mark.parametrize("method", ["hmac-sha256", "rsa-md5"])
async def test_weak_envelope_signature_method_is_a_security_failure(
    intake: httpx.AsyncClient, pki: DevPki, method: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    try:
        built, _ = message(pki, sign=_weak_signer(method, pki.municipality.signing))
    except xmlsec.Error as exc:  # pragma: no cover - depends on the crypto backend
        pytest.fail(f"libxmlsec1 could not make an {method} signature to test with: {exc}")
    r = await post(intake, built)
    assert_refused(pki, r)
    text = await stored_detail(sessions, "SEC-SIG-ALGORITHM")
    assert method in text


# --- the CMS envelope ----------------------------------------------------------------------


async def test_plaintext_payload_from_a_party_that_must_encrypt_is_refused(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    built, _ = message(pki, plaintext=True)
    r = await post(intake, built)
    assert_only_error(pki, r, "SEC-PLAINTEXT-REFUSED", "SecurityFailure")
    msg, _, kinds = await last_message(sessions)
    assert msg.status == "MESSAGE_ERROR"
    assert "validated" not in kinds


async def test_plaintext_payload_from_a_party_registered_plaintext_allowed_is_accepted(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    settings_with_pki: Settings,
) -> None:
    await register(sessions, settings_with_pki, plaintext_allowed=True)
    built, _ = message(pki, plaintext=True)
    r = await post(intake, built)
    assert apprec(pki, r)[:2] == ("1", [])
    msg, _, _ = await last_message(sessions)
    assert msg.status == "OK"


async def test_payload_encrypted_to_a_cert_that_is_not_ours_is_a_security_failure(
    intake: httpx.AsyncClient, pki: DevPki
) -> None:
    stranger = pki.municipality.encryption.certificate
    built, _ = message(pki, encrypt_to=stranger)
    r = await post(intake, built)
    text = assert_only_error(pki, r, "SEC-CMS-NO-RECIPIENT", "SecurityFailure")
    assert serial_text(stranger) in text


async def test_aes128_encrypted_payload_is_accepted(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    data = signed_msghead(pki.municipality.signing)
    enveloped = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(data)
        .add_recipient(pki.kpr.encryption.certificate)
        .set_content_encryption_algorithm(algorithms.AES128)
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
    built = build_ebxml(Payload(enveloped, PKCS7), options(), pki.municipality.signing)
    r = await post(intake, built)
    assert apprec(pki, r)[:2] == ("1", [])
    details = await event_details(sessions, "decrypted")
    assert [d["cipher"] for d in details] == ["aes128_cbc"]


async def test_decryption_key_rollover_decrypts_to_old_and_new_key(
    settings_with_pki: Settings, demo_party: int, pki: DevPki, tmp_path: Path
) -> None:
    now = _now()
    new = issue_certificate(
        pki.ca,
        common_name="KPR Dev (ny nøkkel)",
        orgnr=pki.kpr.orgnr,
        purpose="encryption",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=730),
    )
    (tmp_path / "new.key").write_bytes(
        new.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "new.crt").write_bytes(new.certificate.public_bytes(serialization.Encoding.PEM))
    pki_dir = settings_with_pki.pki_dir
    settings = settings_with_pki.model_copy(
        update={
            "decryption_keys": (
                KeyFiles(pki_dir / "kpr-encryption.key", pki_dir / "kpr-encryption.crt"),
                KeyFiles(tmp_path / "new.key", tmp_path / "new.crt"),
            )
        }
    )
    first = msghead()
    async with running(settings) as client:
        old_r = await post(
            client, message(pki, head=first, encrypt_to=pki.kpr.encryption.certificate)[0]
        )
        new_r = await post(
            client, message(pki, head=chained_msghead(first), encrypt_to=new.certificate)[0]
        )
        stranger_r = await post(
            client, message(pki, encrypt_to=pki.municipality.encryption.certificate)[0]
        )
    assert apprec(pki, old_r)[:2] == ("1", [])
    assert apprec(pki, new_r)[:2] == ("1", [])
    # Both our certificates are named to a sender who encrypted to neither.
    text = assert_only_error(pki, stranger_r, "SEC-CMS-NO-RECIPIENT", "SecurityFailure")
    assert serial_text(new.certificate) in text
    assert serial_text(pki.kpr.encryption.certificate) in text


async def test_gzip_payload_is_accepted(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    built, _ = message(pki, gzip=True)
    r = await post(intake, built)
    assert apprec(pki, r)[:2] == ("1", [])
    details = await event_details(sessions, "decrypted")
    assert [d["compressed"] for d in details] == [True]


@lru_cache(maxsize=1)
def _zip_bomb() -> bytes:
    """~200 KB of gzip that inflates to 256 MiB of zeros (beyond the 200 MiB cap)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1024 * 1024)
    out = b"".join(comp.compress(chunk) for _ in range(256))
    return out + comp.flush()


async def test_zip_bomb_gives_a_finding_not_an_outage(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    bomb = _zip_bomb()
    assert len(bomb) < 1024 * 1024
    payload = encrypted_payload(bomb, pki.kpr.encryption.certificate)
    built = build_ebxml(payload, options(), pki.municipality.signing)
    r = await post(intake, built)
    status, codes, texts = apprec(pki, r)
    assert (status, codes) == ("2", ["T99"])
    assert "gzip" in texts[0]
    msg, rules, _ = await last_message(sessions)
    assert msg.status == "AVVIST"
    assert rules == ["SEC-GZIP-TOO-LARGE"]
    # The service still works afterwards.
    assert apprec(pki, await post(intake, message(pki)[0]))[:2] == ("1", [])


async def test_sign_then_encrypt_cms_signed_data_is_accepted(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    signed = cms.sign_data(msghead(), pki.municipality.signing)
    built = build_ebxml(
        encrypted_payload(signed, pki.kpr.encryption.certificate),
        options(),
        pki.municipality.signing,
    )
    r = await post(intake, built)
    assert apprec(pki, r)[:2] == ("1", [])
    details = await event_details(sessions, "decrypted")
    assert [d["cms_signed"] for d in details] == [True]


# --- revocation status unavailable: temporary ----------------------------------------------


async def test_missing_crl_is_a_temporary_failure_and_the_retry_is_processed(
    settings_with_pki: Settings,
    demo_party: int,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    crl_file = settings_with_pki.pki_dir / "ca.crl"
    crl_file.unlink()
    built, _ = message(pki)
    async with running(settings_with_pki) as client:
        first = await post(client, built)
    assert_only_error(pki, first, "SEC-CERT-STATUS-UNAVAILABLE", "DeliveryFailure", signed=False)
    msg, rules, _ = await last_message(sessions)
    assert (msg.status, rules) == ("MESSAGE_ERROR", ["SEC-CERT-STATUS-UNAVAILABLE"])

    write_crl(pki, settings_with_pki.pki_dir)  # the operator fixes the CRL download
    async with running(settings_with_pki) as client:
        retry = await post(client, built)  # the same bytes, the same MessageId
    assert retry.content != first.content
    assert apprec(pki, retry)[:2] == ("1", [])
    msg, rules, kinds = await last_message(sessions)
    assert msg.status == "OK"
    assert "duplicate" not in kinds
    assert "validated" in kinds


# --- the business signature: AppRec status 2 -----------------------------------------------


async def test_msghead_tampered_after_signing_gives_apprec_s01(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    signed = signed_msghead(pki.municipality.signing)
    tampered = signed.replace(b"<OrganisationName>", b"<OrganisationName>X", 1)
    assert tampered != signed
    payload = encrypted_payload(tampered, pki.kpr.encryption.certificate)
    r = await post(intake, build_ebxml(payload, options(), pki.municipality.signing))
    status, codes, _ = apprec(pki, r)
    assert (status, codes) == ("2", ["S01"])
    msg, rules, _ = await last_message(sessions)
    assert (msg.status, rules) == ("AVVIST", ["SEC-MSG-SIG-INVALID"])


@pytest.mark.parametrize(
    ("signer", "rule"),
    [("expired", "SEC-MSG-CERT-VALIDITY"), ("unknown", "SEC-MSG-CERT-UNKNOWN")],
)
async def test_msghead_signed_with_invalid_cert_gives_apprec_s02(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    signer: str,
    rule: str,
) -> None:
    key = expired_signing(pki) if signer == "expired" else foreign_signing()
    built, _ = message(pki, document_key=key)
    r = await post(intake, built)
    status, codes, texts = apprec(pki, r)
    assert (status, codes) == ("2", ["S02"])
    assert serial_text(key.certificate) in texts[0]
    msg, rules, _ = await last_message(sessions)
    assert (msg.status, rules) == ("AVVIST", [rule])


async def test_unsigned_msghead_from_a_party_that_must_sign_gives_apprec_s01(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    built, _ = message(pki, sign_document=False)
    r = await post(intake, built)
    assert apprec(pki, r)[:2] == ("2", ["S01"])
    msg, rules, _ = await last_message(sessions)
    assert (msg.status, rules) == ("AVVIST", ["SEC-MSG-UNSIGNED"])


# --- our reply -----------------------------------------------------------------------------


async def test_reply_is_signed_by_kpr_and_apprec_is_encrypted_to_the_municipality(
    intake: httpx.AsyncClient, pki: DevPki
) -> None:
    r = await post(intake, message(pki)[0])
    mime = parse_body(r.content, r.headers["content-type"], max_parts=8).message
    assert mime is not None
    signature = xmldsig.verify_envelope(mime.soap, mime.attachment_map)
    assert signature.findings == ()
    assert signature.signer == pki.kpr.signing.certificate
    (part,) = mime.attachments
    assert part.media_type == "application/pkcs7-mime"
    assert b"AppRec" not in part.data
    theirs = cms.decrypt_enveloped(part.data, [pki.municipality.encryption])
    assert theirs.findings == ()
    assert theirs.recipient == pki.municipality.encryption.certificate
    assert theirs.content is not None
    # The AppRec document itself is signed by KPR (CMS SignedData inside the encryption).
    signed = cms.verify_signed_data(theirs.content)
    assert signed.findings == ()
    assert signed.signer == pki.kpr.signing.certificate
    assert signed.content is not None
    assert parse_apprec(signed.content).status == "1"
    ours = cms.decrypt_enveloped(part.data, [pki.kpr.encryption])
    assert ours.content is None


async def test_missing_crl_for_the_msghead_signer_is_temporary_too(
    settings_with_pki: Settings,
    demo_party: int,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """The envelope signer's CA has a CRL, the MsgHead signer's (also trusted) CA has none:
    that is our outage too, never an AppRec rejection, and the retry is processed."""
    now = _now()
    second_ca = make_ca(now, name="KPR Dev CA 2")
    (tmp_path / "ca2.crt").write_bytes(
        second_ca.certificate.public_bytes(serialization.Encoding.PEM)
    )
    pki_dir = settings_with_pki.pki_dir
    settings = settings_with_pki.model_copy(
        update={"trust_anchors": (pki_dir / "ca.crt", tmp_path / "ca2.crt")}
    )
    document_key = issue_certificate(
        second_ca,
        common_name="Demo kommune (CA 2)",
        orgnr=DEV_MUNICIPALITY_ORGNR,
        purpose="signing",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=30),
    )
    built, _ = message(pki, document_key=document_key)
    async with running(settings) as client:
        first = await post(client, built)
    assert_only_error(pki, first, "SEC-MSG-CERT-STATUS-UNAVAILABLE", "DeliveryFailure")
    msg, rules, _ = await last_message(sessions)
    assert (msg.status, rules) == ("MESSAGE_ERROR", ["SEC-MSG-CERT-STATUS-UNAVAILABLE"])

    (pki_dir / "ca2.crl").write_bytes(
        make_crl(second_ca, now).public_bytes(serialization.Encoding.PEM)
    )
    crl_dir = tmp_path / "crls"
    crl_dir.mkdir()
    for name in ("ca.crl", "ca2.crl"):
        (crl_dir / name).write_bytes((pki_dir / name).read_bytes())
    fixed = settings.model_copy(update={"crl_dir": crl_dir})
    async with running(fixed) as client:
        retry = await post(client, built)
    assert apprec(pki, retry)[:2] == ("1", [])


async def test_msghead_signed_with_revoked_cert_gives_apprec_s03(
    settings_with_pki: Settings,
    demo_party: int,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = _now()
    revoked = issue_certificate(
        pki.ca,
        common_name="Demo kommune (tilbakekalt)",
        orgnr=DEV_MUNICIPALITY_ORGNR,
        purpose="signing",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=30),
    )
    write_crl(pki, settings_with_pki.pki_dir, revoked=(revoked.certificate.serial_number,))
    async with running(settings_with_pki) as client:
        r = await post(client, message(pki, document_key=revoked)[0])
    assert apprec(pki, r)[:2] == ("2", ["S03"])
    msg, rules, _ = await last_message(sessions)
    assert (msg.status, rules) == ("AVVIST", ["SEC-MSG-CERT-REVOKED"])
