"""Security rules that no other HTTP test reaches, each in a message that breaks only that rule:
the payload's encryption algorithm (SEC-CMS-ALGORITHM: MessageError SecurityFailure), the
MsgHead signature's structure and algorithm (SEC-MSG-SIG-*: AppRec 2 S01), the MsgHead
signer's certificate (SEC-MSG-CERT-*: AppRec 2 S02) and a corrupt gzip payload
(SEC-GZIP-CORRUPT: AppRec 2 T01). Runs on SQLite (no SQL here differs between the databases)."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import os

import httpx
import pytest
import xmlsec
from cryptography.hazmat.primitives import serialization
from lxml import etree
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.xmlparse import parse_xml
from app.dev.client import build_ebxml
from app.dev.devpki import DEV_MUNICIPALITY_ORGNR, DevPki, issue_certificate
from app.ebxml.build import Payload
from app.platform.settings import Settings
from app.security import xmldsig
from app.security.keys import KeyPair, serial_text
from tests.integration.messages import msghead, post
from tests.integration.test_intake_security import (
    OTHER_ORGNR,
    PKCS7,
    apprec,
    assert_only_error,
    encrypted_payload,
    event_details,
    last_message,
    message,
    options,
    register,
    signed_msghead,
)
from tests.unit.test_security_rules_coverage import enveloped

# signature and CMS rules: no SQL that differs between the databases
pytestmark = pytest.mark.databases("sqlite")

DS = f"{{{xmldsig.DS_NS}}}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def dev_ca_certificate(pki: DevPki, name: str, orgnr: str, purpose: str) -> KeyPair:
    """A certificate from our trusted dev CA, valid now, not registered for any party."""
    now = _now()
    return issue_certificate(
        pki.ca,
        common_name=name,
        orgnr=orgnr,
        purpose=purpose,  # type: ignore[arg-type]
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=30),
    )


def _private_pem(key: KeyPair) -> bytes:
    return key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


_METHODS = {
    "rsa-sha1": xmlsec.constants.TransformRsaSha1,
    "rsa-md5": xmlsec.constants.TransformRsaMd5,
    "hmac-sha256": xmlsec.constants.TransformHmacSha256,
}


def msghead_signed_with(method: str, key: KeyPair) -> bytes:
    """A MsgHead with an enveloped signature that follows the profile (URI="", enveloped +
    c14n, sha256 digest, the certificate in KeyInfo) except for its SignatureMethod: rsa-*
    with the municipality's key, hmac-sha256 with a shared secret."""
    root = parse_xml(msghead(), huge=True)
    sig = xmlsec.template.create(
        root, xmlsec.constants.TransformInclC14N, _METHODS[method], ns="ds"
    )
    ref = xmlsec.template.add_reference(sig, xmlsec.constants.TransformSha256, uri="")
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformInclC14N)
    root.append(sig)
    ctx = xmlsec.SignatureContext()
    if method.startswith("hmac"):
        ctx.key = xmlsec.Key.from_binary_data(
            xmlsec.constants.KeyDataHmac, b"delt hemmelighet 0123456789abcdef"
        )
    else:
        ctx.key = xmlsec.Key.from_memory(_private_pem(key), xmlsec.constants.KeyDataFormatPem)
    try:
        ctx.sign(sig)
    except xmlsec.Error as exc:  # pragma: no cover - depends on the crypto backend
        pytest.fail(f"libxmlsec1 could not make an {method} signature to test with: {exc}")
    # KeyInfo is outside SignedInfo: add the certificate after signing, as a sender would.
    data = xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(sig))
    cert_el = xmlsec.template.x509_data_add_certificate(data)
    cert_el.text = base64.b64encode(
        key.certificate.public_bytes(serialization.Encoding.DER)
    ).decode()
    signed = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    assert method.encode() in signed
    return signed


async def post_payload(
    intake: httpx.AsyncClient, pki: DevPki, data: bytes, content_type: str = PKCS7
) -> httpx.Response:
    """`data` as the payload of a message the demo municipality signs correctly."""
    built = build_ebxml(Payload(data, content_type), options(), pki.municipality.signing)
    return await post(intake, built)


async def assert_rejected(sessions: async_sessionmaker[AsyncSession], rule: str) -> list[str]:
    msg, rules, kinds = await last_message(sessions)
    assert (msg.status, rules) == ("AVVIST", [rule])
    return kinds


# --- SEC-CMS-ALGORITHM: MessageError SecurityFailure -------------------------------------------


async def test_handmade_payload_with_supported_algorithms_is_accepted(
    intake: httpx.AsyncClient, pki: DevPki
) -> None:
    """The control for the cases below: the same hand-made EnvelopedData, AES-256-CBC and
    RSA PKCS#1 v1.5, is accepted."""
    data = enveloped(signed_msghead(pki.municipality.signing), pki.kpr.encryption.certificate)
    r = await post_payload(intake, pki, data)
    assert apprec(pki, r)[:2] == ("1", [])


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        pytest.param({"key_transport": "rsaes_oaep"}, "rsaes_oaep", id="rsa-oaep"),
        pytest.param({"cipher": "aes192_cbc"}, "aes192_cbc", id="aes192-cbc"),
    ],
)
async def test_unsupported_payload_encryption_is_a_security_failure(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    changes: dict[str, str],
    named: str,
) -> None:
    data = enveloped(
        signed_msghead(pki.municipality.signing), pki.kpr.encryption.certificate, **changes
    )
    r = await post_payload(intake, pki, data)
    text = assert_only_error(pki, r, "SEC-CMS-ALGORITHM", "SecurityFailure")
    assert named in text
    msg, rules, kinds = await last_message(sessions)
    assert (msg.status, rules) == ("MESSAGE_ERROR", ["SEC-CMS-ALGORITHM"])
    assert "validated" not in kinds
    details = await event_details(sessions, "decrypted")
    assert [(d["ok"], d["cipher"]) for d in details] == [(False, None)]


# --- the MsgHead signature: AppRec 2 S01 -----------------------------------------------------


async def test_msghead_signature_without_signature_value_gives_apprec_s01(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    root = etree.fromstring(signed_msghead(pki.municipality.signing))
    value = root.find(f"{DS}Signature/{DS}SignatureValue")
    assert value is not None
    parent = value.getparent()
    assert parent is not None
    parent.remove(value)
    broken = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    r = await post_payload(
        intake, pki, encrypted_payload(broken, pki.kpr.encryption.certificate).data
    )
    status, codes, texts = apprec(pki, r)
    assert (status, codes) == ("2", ["S01"])
    assert "SignatureValue" in texts[0]
    await assert_rejected(sessions, "SEC-MSG-SIG-MALFORMED")


async def test_msghead_signed_with_rsa_sha1_is_accepted(
    intake: httpx.AsyncClient, pki: DevPki
) -> None:
    head = msghead_signed_with("rsa-sha1", pki.municipality.signing)
    built, _ = message(pki, head=head, sign_document=False)
    assert apprec(pki, await post(intake, built))[:2] == ("1", [])


@pytest.mark.parametrize("method", ["rsa-md5", "hmac-sha256"])
async def test_msghead_signed_with_a_weak_method_gives_apprec_s01(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    method: str,
) -> None:
    head = msghead_signed_with(method, pki.municipality.signing)
    built, _ = message(pki, head=head, sign_document=False)  # the envelope is signed correctly
    status, codes, texts = apprec(pki, await post(intake, built))
    assert (status, codes) == ("2", ["S01"])
    assert method in texts[0]
    await assert_rejected(sessions, "SEC-MSG-SIG-ALGORITHM")


# --- the MsgHead signer's certificate: AppRec 2 S02 ------------------------------------------


async def test_msghead_signed_with_another_organisations_cert_gives_apprec_s02(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    other = dev_ca_certificate(pki, "Annen kommune", OTHER_ORGNR, "signing")
    built, _ = message(pki, document_key=other)  # the envelope: the municipality's own key
    status, codes, texts = apprec(pki, await post(intake, built))
    assert (status, codes) == ("2", ["S02"])
    assert OTHER_ORGNR in texts[0]
    assert DEV_MUNICIPALITY_ORGNR in texts[0]
    await assert_rejected(sessions, "SEC-MSG-CERT-ORGNR")


async def test_msghead_signed_with_an_encryption_cert_gives_apprec_s02(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    encryption_only = dev_ca_certificate(
        pki, "Demo kommune (kryptering)", DEV_MUNICIPALITY_ORGNR, "encryption"
    )
    built, _ = message(pki, document_key=encryption_only)
    status, codes, texts = apprec(pki, await post(intake, built))
    assert (status, codes) == ("2", ["S02"])
    assert "keyEncipherment" in texts[0] or "key_encipherment" in texts[0]
    assert serial_text(encryption_only.certificate) in texts[0]
    await assert_rejected(sessions, "SEC-MSG-CERT-KEY-USAGE")


# --- SEC-GZIP-CORRUPT: AppRec 2 T01 ----------------------------------------------------------


def truncated_gzip(pki: DevPki) -> bytes:
    # Random bytes so the stream is long (repetitive XML would compress to almost nothing).
    packed = gzip.compress(signed_msghead(pki.municipality.signing) + os.urandom(4096), mtime=0)
    cut = packed[: len(packed) // 2]
    assert cut.startswith(b"\x1f\x8b")
    return cut


async def test_every_undecryptable_payload_gets_the_same_message_error(
    intake: httpx.AsyncClient, pki: DevPki, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Bad padding, a truncated gzip and decrypted garbage are answered alike: an AppRec T01
    for "decrypts, but is garbage" next to a MessageError for "does not decrypt" would tell a
    sender which ciphertexts decrypt (issue 9)."""
    cert = pki.kpr.encryption.certificate
    good = encrypted_payload(signed_msghead(pki.municipality.signing), cert).data
    cases = {
        "bad padding": good[:-1] + bytes([good[-1] ^ 0x01]),
        "truncated gzip": encrypted_payload(truncated_gzip(pki), cert).data,
        "not xml": encrypted_payload(b"ikke en fagmelding " * 200, cert).data,
    }
    answers: set[str] = set()
    for name, data in cases.items():
        r = await post_payload(intake, pki, data)
        answers.add(assert_only_error(pki, r, "SEC-CMS-DECRYPT", "SecurityFailure"))
        msg, rules, _ = await last_message(sessions)
        assert (msg.status, rules) == ("MESSAGE_ERROR", ["SEC-CMS-DECRYPT"]), name
    assert len(answers) == 1, answers
    # The operator still sees what went wrong with each.
    failed = [d.get("failed") for d in await event_details(sessions, "decrypted")]
    assert failed[1] == "SEC-GZIP-CORRUPT"
    assert failed[2] is None  # decrypted fine; it is the content that is not a MsgHead


async def test_truncated_gzip_plaintext_payload_gives_apprec_t01(
    intake: httpx.AsyncClient,
    pki: DevPki,
    sessions: async_sessionmaker[AsyncSession],
    settings_with_pki: Settings,
) -> None:
    await register(sessions, settings_with_pki, plaintext_allowed=True)
    r = await post_payload(intake, pki, truncated_gzip(pki), "application/gzip")
    status, codes, _ = apprec(pki, r)
    assert (status, codes) == ("2", ["T01"])
    await assert_rejected(sessions, "SEC-GZIP-CORRUPT")
