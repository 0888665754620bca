"""A mail over `KPR_MAX_MESSAGE_BYTES`: never read whole. Its first MIME part (the SOAP
envelope, at most `ENVELOPE_BYTES`) is read to see who sent it; a registered sender whose
envelope signature checks out gets an ebXML MessageError by mail, anyone else nothing (the
refusal is stored and logged either way).

What is checked without the payload: the ebMS header as the intake reads it, the XML-DSig
SignedInfo's signature by one of the party's registered signing certificates valid now, and
the digest of the envelope's own reference (`URI=""`, with the profile's transforms). The
payload's `cid:` reference is not (it would need the payload, the very thing not read): the
envelope, header and all, is the party's; the payload part may not be.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32

import anyio
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from app.core.findings import Finding
from app.core.xmlparse import XmlRejected, parse_xml
from app.ebxml import build as ebuild
from app.ebxml.envelope import EbmsHeader, ReplyContext, first_her_id, parse_envelope
from app.edi.handler import TRANSPORT, EdiIntake, Handled, Sender, mail_key, new_request_id
from app.edi.mail import IncomingMail, MailUnreadable, read_mail
from app.intake import rules as intake_rules
from app.intake import stages
from app.intake.ebms.replies import new_message_id
from app.intake.ebms.request import IntakeRequest, Reply
from app.intake.shared import certs, her_number
from app.parties import repository as party_repo
from app.platform.logs import get_logger
from app.platform.mailboxes import EdiMailbox
from app.statuses import CertificateUsage

log = get_logger(__name__)

# the envelope part as fetched: the SOAP part's own cap (64 KiB) in base64, with line breaks
ENVELOPE_BYTES = 96 * 1024
_DS = "http://www.w3.org/2000/09/xmldsig#"
_C14N = {
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315": False,
    "http://www.w3.org/2001/10/xml-exc-c14n#": True,
}
_DIGESTS = {
    "http://www.w3.org/2000/09/xmldsig#sha1": "sha1",
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
}
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
_HOP_ACTORS = (
    "urn:oasis:names:tc:ebxml-msg:actor:nextMSH",
    "http://schemas.xmlsoap.org/soap/actor/next",
)
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": hashes.SHA1,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": hashes.SHA256,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class OversizeHeader:
    header: EbmsHeader
    reply_context: ReplyContext
    from_her: str
    to_her: str


def envelope_of(part_headers: bytes, part: bytes) -> bytes:
    """The first part's content with its Content-Transfer-Encoding undone."""
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(part_headers)
        cte = str(headers.get("Content-Transfer-Encoding") or "binary").strip().lower()
    except Exception:
        return part
    try:
        if cte == "base64":
            return base64.b64decode(b"".join(part.split()))
        if cte == "quoted-printable":
            return binascii.a2b_qp(part)
    except (binascii.Error, ValueError):
        return b""
    return part


def read_header(soap: bytes) -> OversizeHeader | None:
    """The ebMS header of the envelope, when it is one and names both parties by HER-id."""
    env = parse_envelope(soap)
    header = env.header
    if header is None or not header.has_signature:
        return None
    from_her = first_her_id(header.from_party.party_ids)
    to_her = first_her_id(header.to_party.party_ids)
    if not from_her or not to_her:
        return None
    return OversizeHeader(
        header=header, reply_context=env.reply_context, from_her=from_her, to_her=to_her
    )


def signed_by(soap: bytes, certificates: tuple[x509.Certificate, ...], now: datetime) -> bool:
    """True when the envelope's SignedInfo carries a valid RSA signature by one of
    `certificates` that is valid at `now`."""
    try:
        root = parse_xml(soap)
    except XmlRejected:
        return False
    signature = root.find(f".//{{{_DS}}}Signature")
    info = signature.find(f"{{{_DS}}}SignedInfo") if signature is not None else None
    value = signature.findtext(f"{{{_DS}}}SignatureValue") if signature is not None else None
    if info is None or not value:
        return False
    c14n = info.find(f"{{{_DS}}}CanonicalizationMethod")
    method = info.find(f"{{{_DS}}}SignatureMethod")
    exclusive = _C14N.get(c14n.get("Algorithm", "") if c14n is not None else "")
    algorithm = _HASHES.get(method.get("Algorithm", "") if method is not None else "")
    if exclusive is None or algorithm is None:
        return False
    if not _envelope_digest_matches(root, info):
        return False
    signed = etree.tostring(info, method="c14n", exclusive=exclusive, with_comments=False)
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return any(_verifies(c, raw, signed, algorithm(), now) for c in certificates)


def _envelope_digest_matches(root: etree._Element, info: etree._Element) -> bool:
    """The `URI=""` reference's digest over the envelope, its transforms applied: the
    signature left out (enveloped-signature), elements for the next hop left out (the ebMS
    profile's XPath), then canonicalised."""
    ref = next((r for r in info.iterfind(f"{{{_DS}}}Reference") if r.get("URI") == ""), None)
    if ref is None:
        return False
    method = ref.find(f"{{{_DS}}}DigestMethod")
    digest = _DIGESTS.get(method.get("Algorithm", "") if method is not None else "")
    algorithms = [
        t.get("Algorithm", "") for t in ref.iterfind(f"{{{_DS}}}Transforms/{{{_DS}}}Transform")
    ]
    known = {_ENVELOPED, _XPATH, *_C14N}
    if digest is None or _ENVELOPED not in algorithms or any(a not in known for a in algorithms):
        return False
    whole = copy.deepcopy(root)
    dropped = list(whole.iter(f"{{{_DS}}}Signature"))
    if _XPATH in algorithms:
        actor = f"{{{_SOAP}}}actor"
        dropped += [e for e in whole.iter() if e.get(actor) in _HOP_ACTORS]
    for element in dropped:
        parent = element.getparent()
        if parent is not None and element.getparent() is not None:
            parent.remove(element)
    last = next((a for a in reversed(algorithms) if a in _C14N), None)
    data = etree.tostring(
        whole, method="c14n", exclusive=_C14N.get(last or "", False), with_comments=False
    )
    expected = "".join((ref.findtext(f"{{{_DS}}}DigestValue") or "").split())
    return base64.b64encode(hashlib.new(digest, data).digest()).decode() == expected


def _verifies(
    cert: x509.Certificate,
    value: bytes,
    signed: bytes,
    algorithm: hashes.HashAlgorithm,
    now: datetime,
) -> bool:
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        return False
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(value, signed, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class OversizeMail:
    size: int  # the whole mail, as the server counts it
    head: bytes  # the mail's header block
    part_headers: bytes  # the first MIME part's headers
    part: bytes  # its first ENVELOPE_BYTES


async def refuse(intake: EdiIntake, box: EdiMailbox, mail: OversizeMail) -> Handled:
    """Store the refusal; an authenticated sender gets a signed MessageError by mail."""
    now = datetime.now(UTC)
    try:
        head = read_mail(mail.head + b"\r\n\r\n")
    except MailUnreadable:
        head = IncomingMail(body=b"", content_type=None, soap_action=None)
    request = IntakeRequest(
        body=b"",
        content_type=head.content_type,
        soap_action=head.soap_action,
        remote_addr=None,
        request_id=new_request_id(),
        received_at=now,
        transport=TRANSPORT,
    )
    service = intake.service(box)
    await service.refuse_too_large(request, mail.size)
    soap = envelope_of(mail.part_headers, mail.part)
    read = await anyio.to_thread.run_sync(lambda: read_header(soap))
    ours = {str(her) for her in service.settings.receivers}
    sender = await _authenticated(intake, read, soap, now, ours)
    reply = Reply(204, b"", "text/plain")
    if read is not None and sender is not None:
        reply = await _message_error(intake, read, mail.size, now)
    log.info("edi.too_large", size=mail.size, answered=sender is not None)
    key = mail_key(mail.head, mail.part_headers, mail.part)
    return await intake.queue(request.request_id, reply, box, key, to=sender)


async def _authenticated(
    intake: EdiIntake, read: OversizeHeader | None, soap: bytes, now: datetime, ours: set[str]
) -> Sender | None:
    """The registered party that signed the envelope, to one of this mailbox's HER-ids."""
    if read is None or read.to_her not in ours:
        return None
    number = her_number(read.from_her)
    if number is None:
        return None
    async with intake.state.sessions() as session:
        party = await party_repo.get_party(session, number)
    if party is None:
        return None
    signing = certs(party, CertificateUsage.SIGNING)
    if not await anyio.to_thread.run_sync(lambda: signed_by(soap, signing, now)):
        return None
    header = read.header
    return Sender(party.id, header.cpa_id, header.service.value, header.action)


async def _message_error(
    intake: EdiIntake, read: OversizeHeader, size: int, now: datetime
) -> Reply:
    limit = intake.state.settings.max_message_bytes
    finding = Finding(
        intake_rules.TOO_LARGE,
        "e-post",
        f"E-posten er {size} byte; største tillatte størrelse er {limit} byte. Del opp meldingen.",
    )
    signer = stages.envelope_signer(intake.state.keyring.signing)
    built = await anyio.to_thread.run_sync(
        lambda: ebuild.build_message_error_for(
            read.reply_context,
            [finding],
            our_party=ebuild.her_party(read.to_her),
            message_id=new_message_id(),
            timestamp=now,
            sign=signer,
        )
    )
    return Reply(200, built.body, built.content_type)
