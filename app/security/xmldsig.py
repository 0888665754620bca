"""XML-DSig for the ebXML envelope (ebMS 2.0 §4.1) and for the MsgHead business document.

Verification is done by libxmlsec1 (python-xmlsec), which implements the XPath transform the
ebMS profile uses to leave `nextMSH`/`actor/next` header elements out of the signature. Before
xmlsec sees a signature we check its shape against the profile ourselves: only rsa-sha256 and
rsa-sha1, only `URI=""` (whole document) and `cid:` (MIME part) references, only the profile's
transforms and its exact XPath expression. That shuts out weak algorithms, XSLT, external URIs
and signatures that sign less than the header.

`cid:` references are resolved through xmlsec's IO callbacks. Those are process-global, so we
replace xmlsec's defaults (file and network access) once with a single resolver that reads
only the attachments of the signature being processed, from a thread-local map.
"""

from __future__ import annotations

import base64
import copy
import io
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from app.core.cid import cid_uri as cid_uri
from app.core.cid import normalize_cid as normalize_cid
from app.core.findings import Finding, Rule
from app.core.xmlparse import parse_xml
from app.security import rules
from app.security.keys import KeyPair, describe_certificate, load_der_certificate

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"

C14N_2001 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
XPATH_1999 = "http://www.w3.org/TR/1999/REC-xpath-19991116"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"

SIGNATURE_METHODS = frozenset({RSA_SHA256, RSA_SHA1})
C14N_METHODS = frozenset({C14N_2001, EXC_C14N})
DIGEST_METHODS = frozenset(
    {
        "http://www.w3.org/2000/09/xmldsig#sha1",
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)

ACTOR_NEXT_MSH = "urn:oasis:names:tc:ebxml-msg:actor:nextMSH"
ACTOR_NEXT = "http://schemas.xmlsoap.org/soap/actor/next"
_XPATH_PREFIX = "SOAP-ENV"
EBMS_XPATH = (
    f'not(ancestor-or-self::node()[@{_XPATH_PREFIX}:actor="{ACTOR_NEXT_MSH}"] | '
    f'ancestor-or-self::node()[@{_XPATH_PREFIX}:actor="{ACTOR_NEXT}"])'
)

_DS = f"{{{DS_NS}}}"
_SIGNATURE_XMLSEC = {
    RSA_SHA256: xmlsec.constants.TransformRsaSha256,
    RSA_SHA1: xmlsec.constants.TransformRsaSha1,
}
# Defence in depth: the transforms xmlsec may run at all, whatever a signature asks for.
_REFERENCE_TRANSFORMS = (
    xmlsec.constants.TransformEnveloped,
    xmlsec.constants.TransformXPath,
    xmlsec.constants.TransformInclC14N,
    xmlsec.constants.TransformExclC14N,
    xmlsec.constants.TransformSha1,
    xmlsec.constants.TransformSha256,
    xmlsec.constants.TransformSha384,
    xmlsec.constants.TransformSha512,
)
_SIGNATURE_TRANSFORMS = (
    xmlsec.constants.TransformInclC14N,
    xmlsec.constants.TransformExclC14N,
    xmlsec.constants.TransformRsaSha256,
    xmlsec.constants.TransformRsaSha1,
)


@dataclass(frozen=True, slots=True)
class EnvelopeSignature:
    """The outcome of verifying the ebXML envelope signature.

    `references` are copies of the signature's ds:Reference elements (an Acknowledgment
    copies them); `signer` is the certificate from KeyInfo/X509Data, present whenever it could
    be read, even if the signature failed (so findings and logs can name it).
    """

    findings: tuple[Finding, ...]
    signer: x509.Certificate | None
    references: tuple[etree._Element, ...]
    signed_cids: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return not self.findings


@dataclass(frozen=True, slots=True)
class DocumentSignature:
    """The outcome of verifying an enveloped ds:Signature in a business document (MsgHead).
    `present` is False when the document carries no signature (then `findings` is empty: the
    caller decides whether the document had to be signed, e.g. by CMS SignedData instead)."""

    present: bool
    findings: tuple[Finding, ...]
    signer: x509.Certificate | None

    @property
    def valid(self) -> bool:
        return self.present and not self.findings


@dataclass(frozen=True, slots=True)
class _Rules:
    malformed: Rule
    algorithm: Rule
    reference: Rule
    invalid: Rule


_TRANSPORT_RULES = _Rules(
    rules.SIG_MALFORMED, rules.SIG_ALGORITHM, rules.SIG_REFERENCE, rules.SIG_INVALID
)
_BUSINESS_RULES = _Rules(
    rules.MSG_SIG_MALFORMED, rules.MSG_SIG_ALGORITHM, rules.MSG_SIG_MALFORMED, rules.MSG_SIG_INVALID
)


# --- cid: resolution through xmlsec's IO callbacks ----------------------------------------------

_local = threading.local()
_callbacks_lock = threading.Lock()
_callbacks_installed = False


def _current_parts() -> Mapping[str, bytes]:
    parts: Mapping[str, bytes] | None = getattr(_local, "parts", None)
    return parts if parts is not None else {}


def _lookup(name: bytes) -> bytes | None:
    uri = name.decode("utf-8", "replace")
    if uri[:4].lower() != "cid:":
        return None
    return _current_parts().get(normalize_cid(uri))


def _cb_match(name: bytes) -> bool:
    return _lookup(name) is not None


def _cb_open(name: bytes) -> io.BytesIO:
    data = _lookup(name)
    if data is None:  # pragma: no cover - xmlsec only opens what matched
        raise OSError("unknown cid")
    return io.BytesIO(data)


def _cb_read(stream: io.BytesIO, buffer: memoryview) -> int:
    return stream.readinto(buffer)


def _cb_close(stream: io.BytesIO) -> None:
    stream.close()


def _install_callbacks() -> None:
    global _callbacks_installed
    with _callbacks_lock:
        if not _callbacks_installed:
            # Drop xmlsec's default file/HTTP resolvers: a Reference may only reach our parts.
            xmlsec.cleanup_callbacks()
            xmlsec.register_callbacks(_cb_match, _cb_open, _cb_read, _cb_close)
            _callbacks_installed = True


@contextmanager
def _parts_in_scope(parts: Mapping[str, bytes]) -> Iterator[None]:
    _install_callbacks()
    previous = getattr(_local, "parts", None)
    _local.parts = parts
    try:
        yield
    finally:
        _local.parts = previous


# --- profile checks ----------------------------------------------------------------------------


def _find(fs: list[Finding], rule: Rule, location: str, detail: str) -> None:
    fs.append(Finding(rule=rule, location=location, detail=detail))


def _xpath_is_ebms_profile(xpath_el: etree._Element) -> bool:
    text = xpath_el.text or ""
    soap_prefixes = [p for p, ns in xpath_el.nsmap.items() if ns == SOAP_NS and p]
    squashed = re.sub(r"\s+", "", text).replace("'", '"')
    for prefix in soap_prefixes:
        one = f'ancestor-or-self::node()[@{prefix}:actor="{ACTOR_NEXT_MSH}"]'
        two = f'ancestor-or-self::node()[@{prefix}:actor="{ACTOR_NEXT}"]'
        if squashed in (f"not({one}|{two})", f"not({two}|{one})"):
            return True
    return False


def _read_signer(sig: etree._Element, rs: _Rules, fs: list[Finding]) -> x509.Certificate | None:
    cert_els = sig.findall(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    location = "ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate"
    if not cert_els:
        _find(fs, rs.malformed, location, "Signaturen mangler sertifikat (ds:X509Certificate).")
        return None
    try:
        der = base64.b64decode("".join((cert_els[0].text or "").split()), validate=True)
        return load_der_certificate(der)
    except ValueError as exc:
        why = f" ({exc})" if exc.__cause__ is not None else ""  # which field, when one is
        _find(fs, rs.malformed, location, f"Sertifikatet i signaturen kan ikke leses{why}.")
        return None


def _check_signed_info(sig: etree._Element, rs: _Rules, fs: list[Finding]) -> str | None:
    """Check SignedInfo's methods; return the signature method when acceptable."""
    signed_info = sig.find(f"{_DS}SignedInfo")
    if signed_info is None or sig.find(f"{_DS}SignatureValue") is None:
        _find(
            fs, rs.malformed, "ds:Signature", "Signaturen mangler ds:SignedInfo/ds:SignatureValue."
        )
        return None
    c14n = signed_info.find(f"{_DS}CanonicalizationMethod")
    c14n_alg = c14n.get("Algorithm") if c14n is not None else None
    if c14n_alg not in C14N_METHODS:
        _find(
            fs,
            rs.algorithm,
            "ds:SignedInfo/ds:CanonicalizationMethod",
            f"Kanonisering '{c14n_alg}' støttes ikke; bruk {C14N_2001}.",
        )
    method = signed_info.find(f"{_DS}SignatureMethod")
    alg = method.get("Algorithm") if method is not None else None
    if alg not in SIGNATURE_METHODS:
        _find(
            fs,
            rs.algorithm,
            "ds:SignedInfo/ds:SignatureMethod",
            f"Signaturalgoritmen '{alg}' er svak eller støttes ikke; bruk {RSA_SHA256}.",
        )
        return None
    return alg


def _check_digest(ref: etree._Element, where: str, rs: _Rules, fs: list[Finding]) -> None:
    digest = ref.find(f"{_DS}DigestMethod")
    alg = digest.get("Algorithm") if digest is not None else None
    if alg not in DIGEST_METHODS:
        _find(
            fs,
            rs.algorithm,
            f"{where}/ds:DigestMethod",
            f"Sjekksumalgoritmen '{alg}' er svak eller støttes ikke; bruk SHA-256.",
        )


def _transforms(ref: etree._Element) -> list[etree._Element]:
    return ref.findall(f"{_DS}Transforms/{_DS}Transform")


def _check_envelope_references(
    sig: etree._Element, parts: Mapping[str, bytes], fs: list[Finding]
) -> list[str]:
    """Exactly one URI="" reference over the envelope, the others `cid:` references to parts
    of the message; returns the normalised Content-IDs referenced."""
    rs = _TRANSPORT_RULES
    refs = sig.findall(f"{_DS}SignedInfo/{_DS}Reference")
    whole = [r for r in refs if r.get("URI") == ""]
    if len(whole) != 1:
        _find(
            fs,
            rs.reference,
            "ds:SignedInfo/ds:Reference[@URI='']",
            f'Signaturen må ha nøyaktig én referanse med URI="" over ebXML-headeren, '
            f"fant {len(whole)}.",
        )
    cids: list[str] = []
    for index, ref in enumerate(refs, start=1):
        uri = ref.get("URI")
        where = f"ds:SignedInfo/ds:Reference[{index}]"
        _check_digest(ref, where, rs, fs)
        if uri == "":
            _check_envelope_transforms(ref, where, fs)
        elif uri is not None and uri[:4].lower() == "cid:":
            cids.append(_check_cid_reference(ref, uri, where, parts, fs))
        else:
            _find(
                fs,
                rs.reference,
                f"{where}/@URI",
                f"Referansen URI='{uri}' er ikke tillatt; bruk URI=\"\" og cid:-referanser.",
            )
    return cids


def _check_envelope_transforms(ref: etree._Element, where: str, fs: list[Finding]) -> None:
    """The URI="" reference: enveloped-signature, c14n and the ebMS profile's XPath only."""
    rule = _TRANSPORT_RULES.reference
    algs = [t.get("Algorithm") for t in _transforms(ref)]
    allowed = {ENVELOPED, XPATH_1999, *C14N_METHODS}
    if ENVELOPED not in algs or any(a not in allowed for a in algs):
        _find(
            fs,
            rule,
            f"{where}/ds:Transforms",
            'Referansen URI="" må bruke transformasjonene enveloped-signature, '
            f"XPath og c14n; fant {algs}.",
        )
    for t in _transforms(ref):
        if t.get("Algorithm") != XPATH_1999:
            continue
        xpath_el = t.find(f"{_DS}XPath")
        if xpath_el is None or not _xpath_is_ebms_profile(xpath_el):
            _find(
                fs,
                rule,
                f"{where}/ds:Transforms/ds:Transform/ds:XPath",
                "XPath-transformasjonen må være ebMS-profilens uttrykk som bare utelater "
                "elementer med SOAP:actor nextMSH eller soap/actor/next.",
            )


def _check_cid_reference(
    ref: etree._Element, uri: str, where: str, parts: Mapping[str, bytes], fs: list[Finding]
) -> str:
    """A `cid:` reference: no transforms, to a part the message has; returns its Content-ID."""
    rule = _TRANSPORT_RULES.reference
    cid = normalize_cid(uri)
    if _transforms(ref):
        _find(
            fs,
            rule,
            f"{where}/ds:Transforms",
            f"Referansen til vedlegget '{cid}' skal ikke ha transformasjoner.",
        )
    if cid not in parts:
        _find(
            fs,
            rule,
            f"{where}/@URI",
            f"Signaturen refererer til vedlegget '{cid}', som ikke finnes i meldingen.",
        )
    return cid


def xmlsec_key(signer: x509.Certificate) -> xmlsec.Key:
    """The signer's public key as xmlsec loads it; raises xmlsec.Error when it cannot."""
    # The key comes from the certificate we return, never from KeyInfo/KeyValue. A
    # certificate that cryptography reads may still be one libxmlsec cannot load.
    return xmlsec.Key.from_memory(
        signer.public_bytes(serialization.Encoding.DER), xmlsec.constants.KeyDataFormatCertDer
    )


def _verify_with_xmlsec(
    sig: etree._Element, signer: x509.Certificate, parts: Mapping[str, bytes]
) -> str | None:
    """Run xmlsec; return None when it verifies, else its reason."""
    ctx = xmlsec.SignatureContext()
    for transform in _REFERENCE_TRANSFORMS:
        ctx.enable_reference_transform(transform)
    for transform in _SIGNATURE_TRANSFORMS:
        ctx.enable_signature_transform(transform)
    try:
        ctx.key = xmlsec_key(signer)
        with _parts_in_scope(parts):
            ctx.verify(sig)
    except xmlsec.Error as exc:
        return str(exc) or type(exc).__name__
    return None


def _as_root(document: bytes | etree._Element) -> etree._Element:
    if isinstance(document, bytes):
        return parse_xml(document, huge=True)
    return document


def verify_envelope(
    envelope: bytes | etree._Element, attachments: Mapping[str, bytes]
) -> EnvelopeSignature:
    """Verify the XML-DSig signature in the SOAP:Header of an ebXML message.

    `attachments` maps each payload part's Content-ID (with or without `<>`) to its decoded
    bytes (after Content-Transfer-Encoding); each must be covered by a `cid:` reference.
    Raises XmlRejected if `envelope` is bytes that are not acceptable XML.
    """
    root = _as_root(envelope)
    parts = {normalize_cid(k): v for k, v in attachments.items()}
    fs: list[Finding] = []
    sigs = root.findall(f"{{{SOAP_NS}}}Header/{_DS}Signature")
    if not sigs:
        _find(
            fs,
            rules.SIG_MISSING,
            "SOAP:Header",
            "Meldingen har ingen ds:Signature i SOAP:Header. Signer meldingen med "
            "virksomhetssertifikatet.",
        )
        return EnvelopeSignature(tuple(fs), None, (), ())
    if len(sigs) > 1:
        _find(
            fs,
            rules.SIG_MALFORMED,
            "SOAP:Header/ds:Signature",
            f"SOAP:Header har {len(sigs)} signaturer; det skal være én.",
        )
        return EnvelopeSignature(tuple(fs), None, (), ())
    sig = sigs[0]
    signer = _read_signer(sig, _TRANSPORT_RULES, fs)
    method = _check_signed_info(sig, _TRANSPORT_RULES, fs)
    cids = _check_envelope_references(sig, parts, fs)
    references = tuple(copy.deepcopy(r) for r in sig.findall(f"{_DS}SignedInfo/{_DS}Reference"))
    for cid in parts:
        if cid not in cids:
            _find(
                fs,
                rules.SIG_PAYLOAD_UNSIGNED,
                f"MIME-del <{cid}>",
                f"Vedlegget '{cid}' er ikke dekket av signaturen: legg til en ds:Reference "
                f'med URI="{cid_uri(cid)}".',
            )
    if fs or signer is None or method is None:
        return EnvelopeSignature(tuple(fs), signer, references, tuple(cids))
    reason = _verify_with_xmlsec(sig, signer, parts)
    if reason is not None:
        _find(
            fs,
            rules.SIG_INVALID,
            "SOAP:Header/ds:Signature",
            f"Signaturen laget med {describe_certificate(signer)} kan ikke verifiseres. "
            "Meldingen er endret etter signering eller signert med en annen nøkkel.",
        )
    return EnvelopeSignature(tuple(fs), signer, references, tuple(cids))


# --- signing ---------------------------------------------------------------------------------


def _signing_key(key_pair: KeyPair) -> xmlsec.Key:
    key_pem = key_pair.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
    key.load_cert_from_memory(
        key_pair.certificate.public_bytes(serialization.Encoding.PEM),
        xmlsec.constants.KeyDataFormatCertPem,
    )
    return key


def _add_key_info(sig: etree._Element) -> None:
    key_info = xmlsec.template.ensure_key_info(sig)
    x509_data = xmlsec.template.add_x509_data(key_info)
    xmlsec.template.x509_data_add_certificate(x509_data)


def sign_envelope(
    envelope: etree._Element,
    attachments: Mapping[str, bytes],
    key_pair: KeyPair,
    *,
    signature_method: str = RSA_SHA256,
) -> etree._Element:
    """Return a signed copy of a SOAP envelope: a ds:Signature appended to SOAP:Header with a
    `URI=""` reference (enveloped-signature, ebMS XPath, c14n) and one `cid:` reference per
    attachment (Content-ID -> decoded bytes), SHA-256 digests, KeyInfo with the certificate."""
    if signature_method not in _SIGNATURE_XMLSEC:
        raise ValueError(f"unsupported signature method {signature_method}")
    root = copy.deepcopy(envelope)
    header = root.find(f"{{{SOAP_NS}}}Header")
    if header is None:
        raise ValueError("the envelope has no SOAP:Header")
    sig = xmlsec.template.create(
        root, xmlsec.constants.TransformInclC14N, _SIGNATURE_XMLSEC[signature_method], ns="ds"
    )
    # Attach first: moving a subtree into the document would drop the XPath element's own
    # SOAP-ENV declaration as redundant with the envelope's SOAP prefix.
    header.append(sig)
    ref = xmlsec.template.add_reference(sig, xmlsec.constants.TransformSha256, uri="")
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
    xpath_transform = xmlsec.template.add_transform(ref, xmlsec.constants.TransformXPath)
    xpath_el = etree.SubElement(xpath_transform, f"{_DS}XPath", nsmap={_XPATH_PREFIX: SOAP_NS})
    xpath_el.text = EBMS_XPATH
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformInclC14N)
    parts = {normalize_cid(k): v for k, v in attachments.items()}
    for cid in parts:
        xmlsec.template.add_reference(sig, xmlsec.constants.TransformSha256, uri=cid_uri(cid))
    _add_key_info(sig)
    ctx = xmlsec.SignatureContext()
    ctx.key = _signing_key(key_pair)
    with _parts_in_scope(parts):
        ctx.sign(sig)
    return root


def sign_document(document: etree._Element, key_pair: KeyPair) -> etree._Element:
    """Return a copy of a business document (MsgHead) with an enveloped ds:Signature as its
    last child: `URI=""`, enveloped-signature + c14n, rsa-sha256, KeyInfo with the cert."""
    root = copy.deepcopy(document)
    sig = xmlsec.template.create(
        root, xmlsec.constants.TransformInclC14N, xmlsec.constants.TransformRsaSha256, ns="ds"
    )
    ref = xmlsec.template.add_reference(sig, xmlsec.constants.TransformSha256, uri="")
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformInclC14N)
    _add_key_info(sig)
    root.append(sig)
    ctx = xmlsec.SignatureContext()
    ctx.key = _signing_key(key_pair)
    ctx.sign(sig)
    return root


sign_msghead = sign_document


@dataclass(frozen=True, slots=True)
class DocumentShape:
    """What the profile checks of a business document's ds:Signature found, before any
    cryptography: `findings`, the `signer` certificate and the signature `method`. Only a
    shape without findings, with a signer and a method, goes on to be verified."""

    findings: tuple[Finding, ...]
    signer: x509.Certificate | None
    method: str | None

    @property
    def verifiable(self) -> bool:
        return not self.findings and self.signer is not None and self.method is not None


def several_document_signatures(count: int) -> DocumentSignature:
    """The verdict on a business document whose root has `count` (> 1) ds:Signature children."""
    finding = Finding(
        rule=_BUSINESS_RULES.malformed,
        location="ds:Signature",
        detail=f"Fagmeldingen har {count} signaturer.",
    )
    return DocumentSignature(present=True, findings=(finding,), signer=None)


def check_document_shape(sig: etree._Element) -> DocumentShape:
    """The business profile's checks of one enveloped ds:Signature (the subtree alone)."""
    rs = _BUSINESS_RULES
    fs: list[Finding] = []
    signer = _read_signer(sig, rs, fs)
    method = _check_signed_info(sig, rs, fs)
    refs = sig.findall(f"{_DS}SignedInfo/{_DS}Reference")
    if len(refs) != 1 or refs[0].get("URI") != "":
        _find(
            fs,
            rs.reference,
            "ds:SignedInfo/ds:Reference",
            'Signaturen på fagmeldingen må ha nøyaktig én referanse med URI="" (hele dokumentet).',
        )
    for index, ref in enumerate(refs, start=1):
        where = f"ds:SignedInfo/ds:Reference[{index}]"
        _check_digest(ref, where, rs, fs)
        algs = [t.get("Algorithm") for t in _transforms(ref)]
        if ENVELOPED not in algs or any(a not in {ENVELOPED, *C14N_METHODS} for a in algs):
            _find(
                fs,
                rs.reference,
                f"{where}/ds:Transforms",
                f"Referansen må bruke enveloped-signature og eventuelt c14n; fant {algs}.",
            )
    return DocumentShape(tuple(fs), signer, method)


def document_verdict(shape: DocumentShape, verified: bool) -> DocumentSignature:
    """The verdict on a present signature: its shape's findings, plus S01 when a verifiable
    signature did not verify (`verified` is only read for a verifiable shape)."""
    if not shape.verifiable or verified:
        return DocumentSignature(present=True, findings=shape.findings, signer=shape.signer)
    assert shape.signer is not None
    invalid = Finding(
        rule=_BUSINESS_RULES.invalid,
        location="MsgHead/ds:Signature",
        detail=f"Signaturen laget med {describe_certificate(shape.signer)} kan ikke verifiseres. "
        "Fagmeldingen er endret etter signering eller signert med en annen nøkkel.",
    )
    return DocumentSignature(present=True, findings=(*shape.findings, invalid), signer=shape.signer)


def verify_document(document: bytes | etree._Element) -> DocumentSignature:
    """Verify the enveloped ds:Signature that is a child of a business document's root
    (MsgHead). Findings map to AppRec S01."""
    root = _as_root(document)
    sigs = root.findall(f"{_DS}Signature")
    if not sigs:
        return DocumentSignature(present=False, findings=(), signer=None)
    if len(sigs) > 1:
        return several_document_signatures(len(sigs))
    shape = check_document_shape(sigs[0])
    if not shape.verifiable:
        return document_verdict(shape, verified=False)
    assert shape.signer is not None
    return document_verdict(shape, _verify_with_xmlsec(sigs[0], shape.signer, {}) is None)


verify_msghead = verify_document


# the shape of app.ebxml.build.Signer, which the builders take
EnvelopeSigner = Callable[[etree._Element, Mapping[str, bytes]], etree._Element]


def envelope_signer(key: KeyPair | None) -> EnvelopeSigner | None:
    """The security layer's envelope signature as the builders' Signer."""
    if key is None:
        return None

    def sign(root: etree._Element, attachments: Mapping[str, bytes]) -> etree._Element:
        return sign_envelope(root, attachments, key)

    return sign
